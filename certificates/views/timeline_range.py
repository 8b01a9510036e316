"""How far ahead the dashboard's expiry timeline looks: 3, 12 or 24 months, or up
to the last expiry ("all"), as the person chose with the range control.

Without a choice it shows the shortest of 12 months, 24 months and all that
holds every managed certificate: certificates valid for more than a year (a
397-day commercial certificate, or a CA's five-year test certificates) would
otherwise fall outside it, and the timeline would show nothing at all.
"""

import calendar
import datetime
from dataclasses import dataclass

from django.db.models import Count, Max, Q
from django.utils.translation import gettext_lazy as _

ALL = "all"
CHOICES = {"3": 3, "12": 12, "24": 24, ALL: None}
LABELS = {"3": _("3 months"), "12": _("12 months"), "24": _("24 months"), ALL: _("All")}
DEFAULTS = ("12", "24", ALL)


def add_months(when: datetime.datetime, months: int) -> datetime.datetime:
    """The same day and time `months` later, the day clipped to the month's length."""
    month0 = when.month - 1 + months
    year, month = when.year + month0 // 12, month0 % 12 + 1
    return when.replace(year=year, month=month,
                        day=min(when.day, calendar.monthrange(year, month)[1]))


@dataclass
class Range:
    key: str  # one of CHOICES
    chosen: bool  # asked for, rather than the default
    end: datetime.datetime
    later: int  # managed certificates expiring after `end`

    def choices(self):
        """(key, label, current) for the control."""
        return [(key, LABELS[key], key == self.key) for key in CHOICES]


def choose(asked: str, certificates, start: datetime.datetime) -> Range:
    """The range asked for (an unknown value is no choice), or the default;
    `certificates`: the managed ones the timeline shows. One aggregate query:
    the latest expiry, and how many expire after each fixed range."""
    ends = {key: add_months(start, months) for key, months in CHOICES.items() if months}
    found = certificates.aggregate(
        latest=Max("expires_at"),
        **{f"after_{key}": Count("pk", filter=Q(expires_at__gt=end)) for key, end in ends.items()},
    )
    latest = found["latest"]
    chosen = asked in CHOICES
    if not chosen:
        asked = next(key for key in DEFAULTS
                     if key == ALL or latest is None or latest <= ends[key])
    if asked == ALL:
        return Range(ALL, chosen, _end_of_all(start, latest, ends["12"]), 0)
    return Range(asked, chosen, ends[asked], found[f"after_{asked}"])


def _end_of_all(start, latest, at_least) -> datetime.datetime:
    """To the first of the month after the latest expiry, and at least a year."""
    if latest is None or latest <= at_least:
        return at_least
    return add_months(latest.replace(day=1, hour=0, minute=0, second=0, microsecond=0), 1)


def stretch(chosen: Range, latest_elsewhere: datetime.datetime | None) -> Range:
    """"All" reaches the latest expiry of the certificates managed elsewhere too."""
    if chosen.key != ALL or latest_elsewhere is None or latest_elsewhere <= chosen.end:
        return chosen
    end = add_months(latest_elsewhere.replace(day=1, hour=0, minute=0, second=0,
                                              microsecond=0), 1)
    return Range(chosen.key, chosen.chosen, end, 0)
