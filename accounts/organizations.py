"""An organisation's own settings that administrators change: its name and the
time zone its pages and e-mails are written in."""

import zoneinfo
from functools import cache

from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _


@cache
def time_zones() -> list[str]:
    """The IANA time zones this system knows, sorted."""
    return sorted(zoneinfo.available_timezones())


def validate_time_zone(value: str) -> None:
    if value not in time_zones():
        raise ValidationError(_("“%(value)s” is not a time zone of the IANA database; "
                                "write it as Asia/Tokyo or Europe/Berlin."),
                              code="invalid_choice", params={"value": value})


# What an administrator may change; the short name (slug) stays, as links use it.
EDITABLE_FIELDS = ("name", "time_zone", "require_mfa")
