"""Monitored endpoints that need a person, for the dashboard's open problems:
one that does not verify (or cannot be reached), one that serves an unmanaged
certificate expiring within the alert threshold (EXPIRY_WARNING_DAYS, as the
mail), one whose unmanaged certificate changed lately.

A managed certificate served at an endpoint has its own expiry and its
deployments: only its verification counts here, and a change to it is the
portal's own doing. One query for the rows shown and one for the count,
however many endpoints there are.
"""

import datetime

from django.conf import settings
from django.db.models import (
    Case,
    Exists,
    IntegerField,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Value,
    When,
)

from accounts.models import Organization

from ..models import EndpointCheck, MonitoredEndpoint

Result = MonitoredEndpoint.Result
# A change stays an open problem this long after the check that saw it.
CHANGE_SHOWN_DAYS = 7
PROBLEM, UNREACHABLE, EXPIRING, CHANGED = 0, 1, 2, 3


def open_problems(organization: Organization, now: datetime.datetime) -> QuerySet:
    """The enabled endpoints with a problem, each annotated with `problem`
    (PROBLEM, UNREACHABLE, EXPIRING or CHANGED: the first that applies) and
    `changed_at`; worst first."""
    warning = now + datetime.timedelta(days=settings.EXPIRY_WARNING_DAYS)
    since = now - datetime.timedelta(days=CHANGE_SHOWN_DAYS)
    recent_changes = EndpointCheck.objects.filter(endpoint=OuterRef("pk"), changed=True,
                                                  checked_at__gte=since)
    unmanaged = Q(managed_certificate__isnull=True, certificate__isnull=False)
    expiring = unmanaged & Q(certificate__expires_at__lte=warning)
    changed = unmanaged & Q(changed_lately=True)
    return (
        MonitoredEndpoint.objects.filter(organization=organization, enabled=True)
        .annotate(changed_lately=Exists(recent_changes))
        .filter(Q(result__in=[Result.PROBLEM, Result.UNREACHABLE]) | expiring | changed)
        .annotate(
            problem=Case(When(result=Result.PROBLEM, then=Value(PROBLEM)),
                         When(result=Result.UNREACHABLE, then=Value(UNREACHABLE)),
                         When(expiring, then=Value(EXPIRING)),
                         default=Value(CHANGED), output_field=IntegerField()),
            changed_at=Subquery(recent_changes.order_by("-checked_at")
                                .values("checked_at")[:1]))
        # Not the managed certificate: its id says enough, and joining every
        # certificate of the organisation was most of this query's time.
        .select_related("certificate")
        .order_by("problem", "certificate__expires_at", "address", "port", "pk")
    )
