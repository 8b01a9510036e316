"""How the portal writes dates, times and amounts for people: one style per
language, written once, for pages (certificates/templatetags/portal_format.py)
and e-mails alike.

    English   1 Dec 2026, 15:04    1 Dec 2026    in 3 days / 2 min ago    ¥1,100   $12.50
    Japanese  2026年12月1日 15:04  2026年12月1日  3日後 / 2分前            1,100円  USD 12.50

Times are shown in the current time zone: the organisation's, activated per
request by certificates.views.common.enter and per mail by certificates.alerts.
The API does not come here: it answers ISO 8601 with an offset.
"""

from __future__ import annotations

import datetime
import re
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

from django.core.exceptions import ValidationError
from django.utils import dateformat, timezone, translation
from django.utils.html import format_html
from django.utils.safestring import SafeString
from django.utils.translation import gettext as _
from django.utils.translation import ngettext_lazy

# Django's English formats are two styles, both month first ("Dec. 1, 2026",
# "12/01/2026 3:04 p.m."), and readers outside the US take 12/01 for the 12th of
# January: the portal writes the day first, in one style per language.
STYLES = {
    "en": {"date": "j M Y", "datetime": "j M Y, H:i", "month": "M", "month_year": "M Y"},
    "ja": {"date": "Y年n月j日", "datetime": "Y年n月j日 H:i", "month": "n月",
           "month_year": "Y年n月"},
}

# ISO 4217 minor units where they are not two; every other code has two.
MINOR_UNITS = {
    "BIF": 0, "CLP": 0, "DJF": 0, "GNF": 0, "ISK": 0, "JPY": 0, "KMF": 0, "KRW": 0,
    "PYG": 0, "RWF": 0, "UGX": 0, "VND": 0, "VUV": 0, "XAF": 0, "XOF": 0, "XPF": 0,
    "BHD": 3, "IQD": 3, "JOD": 3, "KWD": 3, "LYD": 3, "OMR": 3, "TND": 3,
}
# English writes these currencies with their sign before the number; the others
# with their code ("CHF 12.50"). "$" is only the US dollar, never another one.
SYMBOLS = {"JPY": "¥", "USD": "$", "EUR": "€", "GBP": "£"}


def _style() -> dict[str, str]:
    return STYLES["ja"] if (translation.get_language() or "").startswith("ja") else STYLES["en"]


def _local(value: datetime.datetime) -> datetime.datetime:
    return timezone.localtime(value) if timezone.is_aware(value) else value


def format_datetime(value: datetime.datetime | None, *, zone: bool = False) -> str:
    """"1 Dec 2026, 15:04" / "2026年12月1日 15:04"; with `zone`, its abbreviation
    follows ("JST"), for mails, which are read away from the portal's pages."""
    if not value:  # None, or "" from a template's default
        return ""
    local = _local(value)
    text = dateformat.format(local, _style()["datetime"])
    return f"{text} {dateformat.format(local, 'T')}" if zone and timezone.is_aware(value) \
        else text


def format_date(value: datetime.date | datetime.datetime | None) -> str:
    """"1 Dec 2026" / "2026年12月1日"; a datetime counts on its local day."""
    if not value:  # None, or "" from a template's default
        return ""
    if isinstance(value, datetime.datetime):
        value = _local(value).date()
    return dateformat.format(value, _style()["date"])


def format_month(value: datetime.date, *, year: bool = False) -> str:
    """"Dec", "Jan 2027" / "12月", "2027年1月": the months of a time axis."""
    return dateformat.format(value, _style()["month_year" if year else "month"])


def format_time(value: datetime.datetime | None) -> str:
    """"15:04:05", the same in both languages (the steps of one run)."""
    return dateformat.format(_local(value), "H:i:s") if value else ""


# (below this many seconds, count in units of this many seconds, future, past).
# Days up to two months: renewal windows and expiries are counted in days.
_UNITS = [
    (3600, 60, ngettext_lazy("in %(count)d min", "in %(count)d min", "count"),
     ngettext_lazy("%(count)d min ago", "%(count)d min ago", "count")),
    (86400, 3600, ngettext_lazy("in %(count)d hour", "in %(count)d hours", "count"),
     ngettext_lazy("%(count)d hour ago", "%(count)d hours ago", "count")),
    (60 * 86400, 86400, ngettext_lazy("in %(count)d day", "in %(count)d days", "count"),
     ngettext_lazy("%(count)d day ago", "%(count)d days ago", "count")),
    (730 * 86400, 365 * 86400 // 12,
     ngettext_lazy("in %(count)d month", "in %(count)d months", "count"),
     ngettext_lazy("%(count)d month ago", "%(count)d months ago", "count")),
    (None, 365 * 86400, ngettext_lazy("in %(count)d year", "in %(count)d years", "count"),
     ngettext_lazy("%(count)d year ago", "%(count)d years ago", "count")),
]


def format_relative(value: datetime.datetime | None,
                    now: datetime.datetime | None = None) -> str:
    """"in 3 days", "2 min ago" / "3日後", "2分前": one unit."""
    if not value:  # None, or "" from a template's default
        return ""
    seconds = int((value - (now or timezone.now())).total_seconds())
    future, seconds = seconds > 0, abs(seconds)
    if seconds < 60:
        return _("in under a minute") if future else _("just now")
    _below, unit, ahead, behind = next(
        row for row in _UNITS if row[0] is None or seconds < row[0])
    # Minutes to days rounded down (a certificate with 2 days 23 hours left has
    # 2 days, as its page says); months and years to the nearest.
    count = seconds // unit if unit <= 86400 else round(seconds / unit)
    return str((ahead if future else behind) % {"count": count})


# An instant as datetime.isoformat() writes it, as older step details hold them
# ("next renewal 2026-12-01T06:04:05.123456+00:00").
_ISO_INSTANT = re.compile(
    r"\b\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(?::\d{2}(?:\.\d{1,6})?)?(?:Z|[+-]\d{2}:\d{2})")


def localize_instants(text: str) -> str:
    """Writes the ISO 8601 instants in a stored text in the reader's style and
    time zone; the rest of the text is left as it is."""

    def local(match: re.Match[str]) -> str:
        try:
            value = datetime.datetime.fromisoformat(match[0].replace("Z", "+00:00"))
        except ValueError:
            return match[0]
        return format_datetime(value)

    return _ISO_INSTANT.sub(local, text or "")


def time_tag(value: datetime.datetime | None, *, relative: bool = True,
             now: datetime.datetime | None = None) -> SafeString:
    """<time> with the instant (ISO 8601, with its offset) for machines and the
    exact local time on hover; its text relative where people scan lists."""
    if not value:
        return SafeString("")
    exact = format_datetime(value, zone=True)
    text = format_relative(value, now) if relative else format_datetime(value)
    return format_html('<time datetime="{}" title="{}">{}</time>',
                       _local(value).isoformat(timespec="seconds"), exact, text)


class Amount:
    """An amount in its currency, written when shown: a mail's context is made
    once and rendered in each recipient's language."""

    def __init__(self, value: Decimal | int | str, currency: str):
        self.value, self.currency = Decimal(value), currency

    def __str__(self) -> str:
        return format_amount(self.value, self.currency)

    def __repr__(self) -> str:
        return f"Amount({self.value!r}, {self.currency!r})"


def minor_units(currency: str) -> int:
    return MINOR_UNITS.get((currency or "").upper(), 2)


def amount_step(currency: str) -> str:
    """The step of an amount input: "1" for yen, "0.01" for cents."""
    units = minor_units(currency)
    return "1" if units == 0 else "0." + "0" * (units - 1) + "1"


def format_amount(amount: Decimal | int | str | None, currency: str) -> str:
    """"¥1,100", "$12.50", "CHF 12.50" / "1,100円", "USD 12.50": grouped by
    thousands, with the currency's own minor units."""
    if amount is None or amount == "":
        return ""
    currency = (currency or "").upper()
    places = minor_units(currency)
    value = Decimal(amount).quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)
    sign, number = ("-" if value < 0 else ""), f"{abs(value):,.{places}f}"
    if _style() is STYLES["ja"]:
        if currency == "JPY":
            return f"{sign}{number}円"
    elif currency in SYMBOLS:
        return f"{sign}{SYMBOLS[currency]}{number}"
    return f"{sign}{currency} {number}".strip()


def check_minor_units(amount: Decimal | None, currency: str, label: str) -> None:
    """Refuses an amount finer than its currency allows (a yen has no cents)."""
    if amount is None:
        return
    places = minor_units(currency)
    try:
        exact = amount == amount.quantize(Decimal(1).scaleb(-places))
    except InvalidOperation:
        exact = False
    if exact:
        return
    if places == 0:
        raise ValidationError(
            _("%(field)s: %(currency)s has no minor unit; enter a whole number such as "
              "%(example)s."),
            code="minor_units",
            params={"field": label, "currency": currency,
                    "example": f"{int(amount.to_integral_value(ROUND_HALF_UP)):d}"})
    raise ValidationError(
        _("%(field)s: %(currency)s has %(places)d decimal places at most."),
        code="minor_units", params={"field": label, "currency": currency, "places": places})
