"""What keeps a person's "renew now" from spending the deposit by surprise.

Outside its renewal window a renewal issues and charges again for a
certificate that is still good: it must be forced, and only administrators
may force one (the UI asks them to confirm the price; the API wants
force=true; `manage.py renew` wants --force), each forced renewal in the audit
log. And an organisation's people may start no more than
PAID_ISSUANCES_PER_DAY paid renewals in 24 hours. Automatic renewals count
towards that number but are never refused by it: they are due, the deposit
reservation bounds them, and refusing them would let certificates lapse.
"""

from __future__ import annotations

import datetime

from django.conf import settings
from django.db.models import Q
from django.http import HttpRequest
from django.utils import timezone

from accounts.models import Organization, User
from certificates.models import AuditEvent, Certificate, RenewalRun


class NotDue(Exception):
    """A person asked to renew a certificate outside its renewal window without
    forcing it."""

    def __init__(self, certificate: Certificate) -> None:
        super().__init__(f"{certificate} is not due for renewal")
        self.certificate = certificate


class PaidIssuanceLimit(Exception):
    """The organisation has started PAID_ISSUANCES_PER_DAY paid issuances in the
    last 24 hours."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"{limit} paid issuances in 24 hours")
        self.limit = limit


class Archived(Exception):
    """A person asked to renew or deploy an archived certificate: restore it first."""

    def __init__(self, certificate: Certificate) -> None:
        super().__init__(f"{certificate} is archived")
        self.certificate = certificate


def check_not_archived(certificate: Certificate) -> None:
    if certificate.is_archived:
        raise Archived(certificate)


def check_window(certificate: Certificate, *, force: bool) -> bool:
    """Whether renewing now is forced (outside the window); NotDue if it would
    be and ``force`` was not given. The caller checks who may force."""
    forced = not certificate.in_renewal_window()
    if forced and not force:
        raise NotDue(certificate)
    return forced


def paid_issuances(organization_id: int, *, now: datetime.datetime | None = None) -> int:
    """Paid issuances of the organisation in the last 24 hours: runs on a priced
    CA account that issued a version or are still under way, whoever started
    them (a renewal held or failed before issuing cost nothing)."""
    now = now or timezone.now()
    return RenewalRun.objects.filter(
        certificate__organization_id=organization_id, certificate__ca_account__price__gt=0,
        created_at__gt=now - datetime.timedelta(days=1),
    ).filter(Q(status__in=RenewalRun.OPEN) | Q(version__isnull=False)).count()


def check_daily_limit(certificate: Certificate) -> None:
    """PaidIssuanceLimit if one more paid renewal would pass the organisation's
    daily number. Inside the transaction that opens the run: the organisation's
    row stays locked until then, so two requests at once cannot both find the
    last place free."""
    if not certificate.ca_account.is_priced():
        return
    list(Organization.objects.select_for_update().filter(
        pk=certificate.organization_id).values_list("pk", flat=True))
    if paid_issuances(certificate.organization_id) >= settings.PAID_ISSUANCES_PER_DAY:
        raise PaidIssuanceLimit(settings.PAID_ISSUANCES_PER_DAY)


def record_forced(request: HttpRequest | None, *, certificate: Certificate, run: RenewalRun,
                  user: User | None = None) -> None:
    """The audit log's line for a renewal forced before its window, with the
    price it costs (`request` is None from a management command)."""
    version = certificate.current_version
    AuditEvent.record(
        request, action=AuditEvent.Action.RENEWAL_FORCED, certificate=certificate, user=user,
        params={"run": run.pk, "price": str(certificate.ca_account.price),
                "currency": certificate.ca_account.currency,
                "valid_until": version.not_after.isoformat() if version else None,
                "renew_after": (certificate.renew_after.isoformat()
                                if certificate.renew_after else None)})
