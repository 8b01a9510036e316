"""What the end of an incident's run means for its certificate: called by
renewal/run.py inside the transaction that ends the run, so the incident's
counts move with the run. Database only: the revocation of the old version,
which talks to the CA, is a task of its own."""

from __future__ import annotations

import datetime

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from certificates import tasks
from certificates.models import Certificate, Incident, IncidentCertificate, RenewalRun


def retry_time(step: datetime.timedelta, *, deadline: datetime.datetime,
               now: datetime.datetime,
               retry_after: datetime.datetime | None = None) -> datetime.datetime:
    """The usual backoff step, shortened to fit the deadline: at most a quarter
    of the time left before it (never under RENEWAL_RETRY_MIN_SECONDS, also past
    it), and never before the CA's Retry-After."""
    floor = datetime.timedelta(seconds=settings.RENEWAL_RETRY_MIN_SECONDS)
    left = deadline - now
    delay = min(step, max(left / 4, floor))
    when = now + delay
    if retry_after is not None and retry_after > when:
        when = retry_after
    return when


def failed(run: RenewalRun, *, step: datetime.timedelta,
           now: datetime.datetime) -> datetime.datetime | None:
    """The run's certificate failed in its incident: counted, with the error and
    the next try. Returns that time (None if the incident is gone)."""
    if run.incident_id is None:
        return None
    deadline = Incident.objects.filter(pk=run.incident_id).values_list(
        "deadline", flat=True).first()
    if deadline is None:
        return None
    when = retry_time(step, deadline=deadline, now=now, retry_after=run.retry_after)
    IncidentCertificate.objects.filter(
        incident_id=run.incident_id, certificate_id=run.certificate_id,
        replaced_at__isnull=True,
    ).update(failures=F("failures") + 1, last_error=run.error[:2000],
             last_error_key=run.error_key, last_error_params=run.error_params,
             next_try_at=when)
    return when


def succeeded(run: RenewalRun, certificate: Certificate, *, served: bool) -> None:
    """Every host serves the replacement: the certificate is replaced; its old
    version is revoked next if the incident says so."""
    if not served or run.incident_id is None:
        return  # a host left out: the incident's pass deploys it again
    replaced(run.incident_id, certificate.pk, certificate.current_version_id)


def replaced(incident_id: int, certificate_id: int, version_id: int | None) -> None:
    items = IncidentCertificate.objects.filter(incident_id=incident_id,
                                               certificate_id=certificate_id,
                                               replaced_at__isnull=True)
    item_id = items.values_list("pk", flat=True).first()
    now = timezone.now()
    if item_id is None or not items.update(replaced_at=now, new_version_id=version_id,
                                           next_try_at=None, revoke_sent_at=now):
        return
    urgent = settings.INCIDENT_TASK_PRIORITY
    transaction.on_commit(lambda: tasks.incident_item_replaced.apply_async(
        (item_id,), priority=urgent))
