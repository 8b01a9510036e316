"""The commands print times in the organisation's time zone, as its pages show
them, rather than in UTC."""

import datetime
import zoneinfo

from django.conf import settings
from django.utils import timezone

from ..formatting import localize_instants


def organization_zone(organization) -> zoneinfo.ZoneInfo:
    """The organisation's time zone; the portal's own if the stored name is
    unknown to this system."""
    try:
        return zoneinfo.ZoneInfo(organization.time_zone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return zoneinfo.ZoneInfo(settings.TIME_ZONE)


def local(value: datetime.datetime, zone: zoneinfo.ZoneInfo) -> datetime.datetime:
    return timezone.localtime(value, zone)


def step_detail(detail: object, zone: zoneinfo.ZoneInfo) -> str:
    """A run step's detail (its message, rendered here in the command's language)
    with the instants it holds (an ARI window, a retry time) written in `zone`."""
    with timezone.override(zone):
        return localize_instants(str(detail))
