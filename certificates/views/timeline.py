"""The dashboard's expiry timeline: an SVG drawn on the server.

Certificates expiring between now and the end of the chosen range
(timeline_range.py) are marks in a lane of their state, the lanes named as the
dashboard's cards; those without a date ahead (expired, never issued, a first
issuance failing) are marks on the "now" line of their lane. Hovering a mark
shows names and dates (an SVG <title>); each mark has a target a finger can hit.

One query fetches what the timeline needs, whatever the size of the fleet
(``rows()``): with at most ``DETAIL_LIMIT`` certificates in the window, every
certificate is a mark on its day, linking to its page. Beyond that, the database
groups them by week and state: one mark per (week, state), sized by its count,
whose tooltip names the first ``NAMES`` certificates (+ how many more) and which
links to the certificate list of that state, latest first, up to that week's
end. A page of ten thousand certificates thus draws at most 53 marks per lane.
Built as a string rather than in a template loop.
"""

import datetime
import math
from dataclasses import dataclass, field

from django.db.models import Count, DateTimeField, F, Min, Q, Value, Window
from django.db.models.functions import Coalesce, Greatest, RowNumber, TruncWeek
from django.urls import reverse
from django.utils import timezone
from django.utils.html import escape
from django.utils.safestring import mark_safe
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext

from .. import states
from ..formatting import format_date, format_month
from ..states import State
from . import timeline_range

# LANE and HIT: a mark's target is HIT units square; the SVG is never drawn
# narrower than 800 px (portal.css), so that is over 25 px: a finger's 24, whatever the rounding.
WIDTH, LEFT, RIGHT, TOP, LANE, HIT = 1000, 170, 10, 26, 32, 32
# Month labels at least this far apart (in SVG units), so that none overlaps the next.
LABEL_SPACING = 60
# Up to this many certificates in the window, one mark each; beyond, grouped.
DETAIL_LIMIT = 500
# Names listed in the tooltip of a grouped mark.
NAMES = 8
# Certificates managed elsewhere (imported, discovered): a lane of their own,
# so that the timeline is complete and still says which ones the portal renews.
UNMANAGED = "unmanaged"
# Lanes from top to bottom, in the order of the dashboard's cards and with
# their words, so that a lane and its card read the same.
LANES = [*State, UNMANAGED]
LABELS = {**{state: state.label for state in State},
          UNMANAGED: gettext_lazy("Managed elsewhere")}


@dataclass
class Row:
    pk: int
    name: str
    expires_at: datetime.datetime | None  # None: never issued
    state: str
    week: datetime.datetime  # Monday 00:00 of its week (of now if past), in the current zone
    in_group: int  # certificates of the same week and state
    total: int  # certificates in the whole window


@dataclass
class Group:
    week: datetime.datetime
    state: str
    count: int
    rows: list = field(default_factory=list)


def rows(certificates, *, end, now=None, unmanaged=None) -> list[Row]:
    """One query: the certificates of `certificates` expiring by `end` (those
    expired or never issued included); all of them when there are at most
    DETAIL_LIMIT, otherwise the first NAMES of each (week, state), every row
    carrying its group's size. `unmanaged` (inventory rows): one more query,
    their rows between now and `end` in their own lane."""
    now = now or timezone.now()
    managed = _window(states.with_state(certificates, now), now, end)
    if unmanaged is not None:
        managed += _unmanaged_lane(unmanaged, now, end, count(managed))
    return sorted(managed, key=lambda r: (r.expires_at or now, r.pk))


def _unmanaged_lane(queryset, now, end, managed_total: int) -> list[Row]:
    """The lane of certificates managed elsewhere, in two queries whatever their
    number: the size of each week (an aggregate, no window over every row), and
    the earliest DETAIL_LIMIT rows by the (organization, expires_at) index, which
    are every row when the timeline draws each. Grouped, a week's mark gives its
    count and dates and links to the inventory list: naming the certificates of
    a second lane of groups doubled the dashboard's drawing time."""
    in_window = (queryset.filter(expires_at__gt=now, expires_at__lte=end)
                 .annotate(week=TruncWeek("expires_at")))
    weeks = {week: (number, first, key) for week, number, first, key in
             in_window.order_by().values("week")
             .annotate(number=Count("pk"), first=Min("expires_at"), key=Min("pk"))
             .values_list("week", "number", "first", "key")}
    total = sum(number for number, _first, _key in weeks.values())
    early = list(in_window.order_by("expires_at", "pk").values_list(
        "pk", "common_name", "expires_at", "week")[:DETAIL_LIMIT])
    if total + managed_total <= DETAIL_LIMIT:
        return [Row(pk, name, expires_at, UNMANAGED, week, weeks[week][0], total)
                for pk, name, expires_at, week in early]
    return [Row(key, "", first, UNMANAGED, week, number, total)
            for week, (number, first, key) in weeks.items()]


def _window(queryset, now, end) -> list[Row]:
    group = [F("week"), F("state")]
    moment = Value(now, output_field=DateTimeField())
    queryset = (
        queryset
        .filter(Q(expires_at__lte=end) | Q(expires_at__isnull=True))
        .annotate(
            # Expired and never issued: the week of now, where their marks stand.
            week=TruncWeek(Greatest(Coalesce("expires_at", moment), moment)),
            in_group=Window(Count("pk"), partition_by=group),
            rank=Window(RowNumber(), partition_by=group,
                        order_by=[F("expires_at").asc(), F("pk").asc()]),
            total=Window(Count("pk")),
        )
        .filter(Q(rank__lte=NAMES) | Q(total__lte=DETAIL_LIMIT))
        # Sorted here, not in SQL: the database would sort every row in the window
        # before keeping the few of each group.
        .order_by()
        .values_list("pk", "common_name", "expires_at", "state", "week", "in_group", "total")
    )
    return [Row(*values) for values in queryset]


def count(timeline_rows) -> int:
    """How many certificates the timeline stands for (not how many rows it has):
    each query's rows carry the total of its side."""
    managed = next((r.total for r in timeline_rows if r.state != UNMANAGED), 0)
    unmanaged = next((r.total for r in timeline_rows if r.state == UNMANAGED), 0)
    return managed + unmanaged


def _x(when, start, end):
    span = (end - start).total_seconds()
    return LEFT + (WIDTH - LEFT - RIGHT) * (when - start).total_seconds() / span


def _jitter(pk: int) -> float:
    # Spread marks of the same day over the lane's height, the same way each time.
    return ((pk * 2654435761) % 1000) / 1000 - 0.5


class _Dates:
    """A local date in the portal's style, formatted once per day however many marks."""

    def __init__(self):
        self.seen = {}

    def __call__(self, when: datetime.datetime) -> str:
        day = timezone.localtime(when).date()
        if day not in self.seen:
            self.seen[day] = format_date(day)
        return self.seen[day]


def _radius(number: int) -> float:
    # 5 for one certificate (as a single mark), +0.5 each time the count doubles.
    return min(9.0, 5 + math.log2(max(number, 1)) / 2)


def _hit(x: float, y: float) -> str:
    """The target of a mark: larger than the mark, invisible (portal.css)."""
    return (f'<rect class="hit" x="{x - HIT / 2:.1f}" y="{y - HIT / 2:.1f}" width="{HIT}" '
            f'height="{HIT}" rx="{HIT / 2}"/>')


def _label_width(text: str) -> float:
    # At the labels' 11 px: wide (CJK) characters about 11 units, others about 6.5.
    return sum(11 if ord(char) >= 0x2E80 else 6.5 for char in text)


def _month_step(start, end) -> int:
    """Label every month, or every 2nd, 3rd, 6th or 12th: as often as fits."""
    months = max((end - start).days / 30.44, 1)
    per_month = (WIDTH - LEFT - RIGHT) / months
    return next((step for step in (1, 2, 3, 6, 12) if step * per_month >= LABEL_SPACING), 24)


def _frame(start, end, height) -> list[str]:
    parts = [
        f'<svg class="timeline" viewBox="0 0 {WIDTH} {height}" role="img" '
        f'preserveAspectRatio="xMinYMin meet" aria-label="{escape(_("Expiry timeline"))}">'
    ]
    for i, state in enumerate(LANES):
        y = TOP + LANE * i
        parts.append(f'<rect class="lane lane-{state}" x="{LEFT}" y="{y}" '
                     f'width="{WIDTH - LEFT - RIGHT}" height="{LANE - 4}" rx="4"/>')
        parts.append(f'<text class="lane-label" x="{LEFT - 8}" y="{y + LANE / 2 + 2}" '
                     f'text-anchor="end">{escape(LABELS[state])}</text>')
    step = _month_step(start, end)
    month = start.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    labelled = False
    while month <= end:
        if month >= start and (month.month - 1) % step == 0:
            x = _x(month, start, end)
            parts.append(f'<line class="tick" x1="{x:.1f}" x2="{x:.1f}" y1="{TOP - 6}" '
                         f'y2="{height - 8}"/>')
            # The year on January's and on the first label, so that each month is known.
            label = format_month(month, year=month.month == 1 or not labelled)
            # A label that would run past the right edge is left out, not cut.
            if x + 3 + _label_width(label) <= WIDTH:
                parts.append(f'<text class="tick-label" x="{x + 3:.1f}" y="{TOP - 10}">'
                             f'{escape(label)}</text>')
                labelled = True
        month = timeline_range.add_months(month, 1)
    x_now = _x(start, start, end)
    parts.append(f'<line class="now" x1="{x_now:.1f}" x2="{x_now:.1f}" y1="{TOP - 6}" '
                 f'y2="{height - 8}"/>')
    return parts


def _lane(state, lane_of) -> int:
    return lane_of.get(state, lane_of[State.VALID.value])


def _detail_marks(timeline_rows, start, end, lane_of, detail, date) -> list[str]:
    parts = []
    for row in timeline_rows:
        x = _x(max(min(row.expires_at or start, end), start), start, end)
        y = TOP + LANE * _lane(row.state, lane_of) + (LANE - 4) / 2 + _jitter(row.pk) * (LANE - 14)
        when = date(row.expires_at) if row.expires_at else State.NEW.label
        tip = escape(f"{row.name} · {when}")
        parts.append(
            f'<a href="{detail[row.state == UNMANAGED]}{row.pk}/">{_hit(x, y)}'
            f'<circle class="mark {row.state}" cx="{x:.1f}" '
            f'cy="{y:.1f}" r="5"><title>{tip}</title></circle></a>'
        )
    return parts


def groups(timeline_rows) -> list[Group]:
    """Rows gathered by (week, state), in order of week then lane."""
    by_key = {}
    for row in timeline_rows:
        key = (row.week, row.state)
        if key not in by_key:
            by_key[key] = Group(row.week, row.state, row.in_group)
        by_key[key].rows.append(row)
    order = {str(state): i for i, state in enumerate(LANES)}
    return sorted(by_key.values(), key=lambda g: (g.week, order.get(g.state, len(LANES))))


def _count_label(number: int, x: float, y: float) -> str:
    """The count inside a grouped mark: small enough to fit its circle."""
    if number < 2:
        return ""
    if number < 100:
        text, size = str(number), ""
    elif number < 1000:
        text, size = str(number), " long"
    else:  # the tooltip says exactly how many
        text, size = _("%(thousands)dk") % {"thousands": number // 1000}, " long"
    return (f'<text class="mark-count{size}" x="{x:.1f}" y="{y + 3:.1f}" '
            f'text-anchor="middle">{escape(text)}</text>')


def _group_href(group, last, now, detail, listing) -> str:
    unmanaged = group.state == UNMANAGED
    if group.count == 1:
        return f"{detail[unmanaged]}{group.rows[0].pk}/"
    if not unmanaged and group.week <= now:
        # The marks on the "now" line: expired, never issued, or due this
        # week; the list of the state holds them all.
        return escape(f"{listing[False]}?state={group.state}")
    # The lists have no date-range filter: this state, expiring by the week's
    # end, latest first, so the week's certificates come at the top.
    days = max(1, math.ceil((last - now).total_seconds() / 86400))
    which = "source=elsewhere" if unmanaged else f"state={group.state}"
    return escape(f"{listing[unmanaged]}?{which}&expiring={days}&sort=-expires")


def _group_marks(timeline_rows, now, start, end, lane_of, detail, date) -> list[str]:
    listing = (reverse("certificates:certificates"), reverse("certificates:inventory"))
    parts = []
    for group in groups(timeline_rows):
        first = max(group.week, start)
        last = min(group.week + datetime.timedelta(days=7), end)
        x = _x(first + (last - first) / 2, start, end)
        y = TOP + LANE * _lane(group.state, lane_of) + (LANE - 4) / 2
        href = _group_href(group, last, now, detail, listing)
        lines = [ngettext(
            "%(count)d certificate, %(first)s – %(last)s",
            "%(count)d certificates, %(first)s – %(last)s", group.count,
        ) % {"count": group.count, "first": date(first),
             "last": date(last - datetime.timedelta(microseconds=1))}]
        if group.week <= now and group.state in (State.EXPIRED, State.NEW, State.FAILING):
            x = _x(start, start, end)  # no date ahead: on the "now" line
        # A later week of the lane of certificates managed elsewhere has its count
        # alone (see _unmanaged_lane): no name, and so no "+n more".
        listed = [row for row in group.rows if row.name][:NAMES]
        lines += [f"{row.name} · {date(row.expires_at) if row.expires_at else State.NEW.label}"
                  for row in listed]
        if listed and group.count > len(listed):
            more = group.count - len(listed)
            lines.append(ngettext("+%(count)d more", "+%(count)d more", more) % {"count": more})
        tip = escape("\n".join(lines))
        label = _count_label(group.count, x, y)
        parts.append(
            f'<a href="{href}">{_hit(x, y)}<circle class="mark group {group.state}" cx="{x:.1f}" '
            f'cy="{y:.1f}" r="{_radius(group.count):.1f}"><title>{tip}</title>'
            f'</circle>{label}</a>'
        )
    return parts


def render(timeline_rows, *, end, now=None) -> str:
    """`timeline_rows`: what ``rows()`` returned for the same `now` and `end`."""
    now = now or timezone.now()
    start = timezone.localtime(now)
    end = timezone.localtime(end)
    height = TOP + LANE * len(LANES) + 8
    lane_of = {str(state): i for i, state in enumerate(LANES)}
    parts = _frame(start, end, height)
    # Indexed by "is it unmanaged": the page of a managed or an unmanaged certificate.
    detail = (reverse("certificates:certificate", args=[0])[:-2],
              reverse("certificates:inventory_certificate", args=[0])[:-2])
    date = _Dates()
    if count(timeline_rows) <= DETAIL_LIMIT:
        parts += _detail_marks(timeline_rows, start, end, lane_of, detail, date)
    else:
        parts += _group_marks(timeline_rows, now, start, end, lane_of, detail, date)
    parts.append("</svg>")
    return mark_safe("".join(parts))


def grouped(timeline_rows) -> bool:
    return count(timeline_rows) > DETAIL_LIMIT
