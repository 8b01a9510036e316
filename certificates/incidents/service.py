"""Incident mode: replace every certificate a filter chooses before a deadline.

Starting one reserves the price of every replacement on the deposit up front
(deposit.py's reservations, the CA accounts locked) and refuses, before
anything is ordered, when a deposit cannot pay for them all. Then it opens
one issuing run per certificate, marked with the incident, and enqueues them
ahead of routine renewals (a higher message priority). A run's end moves its
certificate's row of the incident (outcomes.py); the incident's pass (every
scan) retries failures on the usual backoff shortened to fit the deadline,
never before the CA's Retry-After, redeploys a replacement a host does not
serve yet, revokes old versions whose replacement is served (if asked) and
completes the incident. Pausing stops its queued runs from being taken up;
resuming enqueues them again.
"""

from __future__ import annotations

import datetime
import logging
from dataclasses import dataclass
from decimal import Decimal

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Exists, F, Max, OuterRef, Q
from django.http import HttpRequest
from django.utils import timezone
from django.utils.translation import gettext as _

from accounts.models import Organization, User
from certificates import tasks
from certificates.formatting import format_amount
from certificates.incidents import lifecycle, outcomes
from certificates.incidents.selection import Filter, matching
from certificates.messages import Message, message, stored_fields
from certificates.models import (
    AuditEvent,
    CAAccount,
    Certificate,
    CertificateVersion,
    Deployment,
    Incident,
    IncidentCertificate,
    RenewalRun,
)
from certificates.renewal import deposit, policy, revocation
from certificates.renewal import lifecycle as run_lifecycle

logger = logging.getLogger(__name__)

Intent = RenewalRun.Intent
# A revocation that failed is tried again after this long.
REVOKE_RETRY = datetime.timedelta(minutes=1)


class IncidentRefused(Exception):
    """Not started, for a reason a person can read."""


class DepositShort(IncidentRefused):
    """``missing``: by CA account name, what its deposit lacks; ``currencies``:
    each account's currency, to write the amounts as the pages do."""

    def __init__(self, missing: dict[str, Decimal],
                 currencies: dict[str, str] | None = None) -> None:
        self.missing = missing
        currencies = currencies or {}
        super().__init__(_("The deposit cannot pay for every replacement; nothing was "
                           "ordered. Missing: %(missing)s.") % {"missing": ", ".join(
                               f"{name} {format_amount(amount, currencies.get(name, ''))}"
                               for name, amount in missing.items())})


def enqueue(run_id: int) -> None:
    """An incident's run goes before routine ones (a higher message priority)."""
    tasks.renew.apply_async((run_id,), priority=settings.INCIDENT_TASK_PRIORITY)


def _enqueue_all(run_ids: list[int]) -> None:
    for run_id in run_ids:
        enqueue(run_id)


# -- starting ---------------------------------------------------------------------------


def check_deadline(deadline: datetime.datetime, *, now: datetime.datetime | None = None) -> None:
    """A deadline already past would start an incident late from its first
    minute, and shorten every retry to the floor: refused, naming the field."""
    if deadline <= (now or timezone.now()):
        raise ValidationError({"deadline": ValidationError(
            _("The deadline must be in the future."), code="deadline_past")})


def start(*, organization: Organization, name: str, chosen: Filter,
          deadline: datetime.datetime, revoke_old: bool = False,
          revocation_reason: int = 4, by: User | None = None,
          request: HttpRequest | None = None) -> Incident:
    """Opens the incident and a run for each chosen certificate, the price of
    all reserved first. Raises IncidentRefused (DepositShort) with nothing
    written; ValidationError naming the deadline when it is past."""
    check_deadline(deadline)
    certificates = list(matching(organization, chosen).values_list(
        "pk", "ca_account_id", "current_version_id", "expires_at"))
    if not certificates:
        raise IncidentRefused(_("No certificate matches this filter."))
    now = timezone.now()
    counts: dict[int, int] = {}
    for _pk, account_id, _version, _expires in certificates:
        counts[account_id] = counts.get(account_id, 0) + 1
    with transaction.atomic():
        prices, missing = deposit.lock_for_many(counts)
        if missing:
            raise DepositShort(missing, dict(CAAccount.objects.filter(pk__in=counts)
                                             .values_list("name", "currency")))
        incident = Incident.objects.create(
            organization=organization, name=name, deadline=deadline, revoke_old=revoke_old,
            revocation_reason=revocation_reason, created_by=by, **vars(chosen))
        IncidentCertificate.objects.bulk_create([
            IncidentCertificate(incident=incident, certificate_id=pk, old_version_id=version)
            for pk, _account, version, _expires in certificates])
        busy = set(RenewalRun.objects.filter(
            certificate_id__in=[c[0] for c in certificates], status__in=RenewalRun.OPEN)
            .values_list("certificate_id", flat=True))
        runs = RenewalRun.objects.bulk_create([
            RenewalRun(certificate_id=pk, trigger=RenewalRun.Trigger.INCIDENT,
                       intent=Intent.ISSUE, incident=incident, requested_by=by,
                       lease_until=now + policy.queue_lease(expires, now))
            for pk, _account, _version, expires in certificates if pk not in busy])
        account_of = {pk: account for pk, account, _v, _e in certificates}
        held = deposit.reserve_runs(
            [(run, account_of[run.certificate_id]) for run in runs], prices)
        incident.reserved = sum(held.values(), Decimal("0"))
        incident.reserved_by_currency = {currency: str(total) for currency, total in held.items()}
        incident.save(update_fields=["reserved", "reserved_by_currency"])
        AuditEvent.record(request, action=AuditEvent.Action.INCIDENT_STARTED,
                          organization=organization, user=by, subject=name, params={
                              "incident": incident.pk, "certificates": len(certificates),
                              "deadline": deadline.isoformat(),
                              "reserved": str(incident.reserved)})
        opened = [run.pk for run in runs]
        transaction.on_commit(lambda: _enqueue_all(opened))
    return incident


# -- pause and resume -------------------------------------------------------------------


def pause(incident: Incident, *, by: User | None = None,
          request: HttpRequest | None = None) -> bool:
    """Its queued runs are no longer taken up (runs under way finish)."""
    if not lifecycle.pause(incident.pk):
        return False
    AuditEvent.record(request, action=AuditEvent.Action.INCIDENT_PAUSED,
                      organization=incident.organization, user=by, subject=incident.name,
                      params={"incident": incident.pk})
    return True


def resume(incident: Incident, *, by: User | None = None,
           request: HttpRequest | None = None) -> bool:
    if not lifecycle.resume(incident.pk):
        return False
    now = timezone.now()
    queued = list(RenewalRun.objects.filter(incident=incident, status=RenewalRun.Status.QUEUED)
                  .values_list("pk", flat=True))
    RenewalRun.objects.filter(pk__in=queued, status=RenewalRun.Status.QUEUED).update(
        lease_until=now + run_lifecycle.queue_lease())
    transaction.on_commit(lambda: _enqueue_all(queued))
    AuditEvent.record(request, action=AuditEvent.Action.INCIDENT_RESUMED,
                      organization=incident.organization, user=by, subject=incident.name,
                      params={"incident": incident.pk})
    return True


# -- the incident's pass ----------------------------------------------------------------


def advance_all(*, now: datetime.datetime | None = None) -> int:
    """Every running incident's pass; the number of runs opened."""
    opened = 0
    for incident in Incident.objects.filter(status=Incident.Status.RUNNING):
        try:
            opened += advance(incident, now=now)
        except Exception:  # one incident's trouble must not stop the others'
            logger.exception("incident %s: its pass failed", incident.pk)
    return opened


def _held_accounts(incident: Incident, now: datetime.datetime) -> set[int]:
    """CA accounts that asked the incident's runs to come back later (rate
    limits, Retry-After): nothing new is sent to them before then."""
    return set(RenewalRun.objects.filter(incident=incident, retry_after__gt=now)
               .values_list("certificate__ca_account_id", flat=True))


def advance(incident: Incident, *, now: datetime.datetime | None = None) -> int:
    now = now or timezone.now()
    open_run = RenewalRun.objects.filter(certificate=OuterRef("certificate_id"),
                                         status__in=RenewalRun.OPEN)
    waiting = IncidentCertificate.objects.filter(
        incident=incident, replaced_at__isnull=True).filter(
        Q(next_try_at__isnull=True) | Q(next_try_at__lte=now)).exclude(
        Exists(open_run)).exclude(
        certificate__ca_account_id__in=_held_accounts(incident, now)).values_list(
        "certificate_id", "old_version_id", "certificate__current_version_id")
    to_issue: list[int] = []
    issued: list[int] = []
    for certificate_id, old, current in waiting:
        (to_issue if current == old else issued).append(certificate_id)
    not_served = set(Deployment.objects.filter(certificate_id__in=issued).exclude(
        last_version_id=F("certificate__current_version_id"), served=True)
        .values_list("certificate_id", flat=True))
    for certificate_id in set(issued) - not_served:
        # Replaced some other way (a routine renewal) and served: counted as replaced.
        outcomes.replaced(incident.pk, certificate_id, Certificate.objects.filter(
            pk=certificate_id).values_list("current_version_id", flat=True).first())
    intents: dict[int, str] = {pk: Intent.ISSUE for pk in to_issue}
    intents.update({pk: Intent.DEPLOY for pk in not_served})
    opened = _open(incident, intents, now)
    _revoke_pending(incident, now)
    complete_if_done(incident.pk)
    return opened


def _open(incident: Incident, intents: dict[int, str], now: datetime.datetime) -> int:
    opened = []
    for certificate_id, intent in intents.items():
        try:
            with transaction.atomic():
                run = RenewalRun.objects.create(
                    certificate_id=certificate_id, trigger=RenewalRun.Trigger.INCIDENT,
                    intent=intent, incident=incident, lease_until=now + run_lifecycle.queue_lease())
        except IntegrityError:
            continue  # a run opened since: its end is counted when it comes
        opened.append(run.pk)
    transaction.on_commit(lambda: _enqueue_all(opened))
    return len(opened)


def _revoke_pending(incident: Incident, now: datetime.datetime) -> None:
    """Revocations to send again: one never tried whose message can be taken as
    lost (sent longer than RENEWAL_QUEUE_SECONDS ago, as for runs), and one that
    failed REVOKE_RETRY ago and was not sent since. Each is sent once per such
    wait, however often the pass runs: a large incident's revocation messages
    wait in the queue behind its replacements, and sending each again at every
    pass while it waits only lengthens that queue."""
    if not incident.revoke_old:
        return
    lost = now - run_lifecycle.queue_lease()
    due = IncidentCertificate.objects.filter(
        incident=incident, replaced_at__isnull=False, revoked_at__isnull=True,
        old_version__isnull=False).filter(
        Q(revoke_tried_at__isnull=True, revoke_sent_at__isnull=True)
        | Q(revoke_tried_at__isnull=True, revoke_sent_at__lt=lost)
        | (Q(revoke_tried_at__lt=now - REVOKE_RETRY)
           & (Q(revoke_sent_at__isnull=True) | Q(revoke_sent_at__lt=now - REVOKE_RETRY))))
    for item_id, sent_at in list(due.values_list("pk", "revoke_sent_at")[:500]):
        if IncidentCertificate.objects.filter(pk=item_id, revoke_sent_at=sent_at).update(
                revoke_sent_at=now):
            tasks.incident_item_replaced.apply_async((item_id,),
                                                     priority=settings.INCIDENT_TASK_PRIORITY)


def complete_if_done(incident_id: int) -> bool:
    items = IncidentCertificate.objects.filter(incident_id=incident_id)
    left = Q(replaced_at__isnull=True)
    if Incident.objects.filter(pk=incident_id, revoke_old=True).exists():
        left |= Q(revoked_at__isnull=True, old_version__isnull=False)
    if items.filter(left).exists():
        return False
    return lifecycle.complete(incident_id)


def item_replaced(*, item_id: int) -> None:
    """After a certificate's replacement is served: its old version revoked, if
    the incident asks for it, and the incident completed once nothing is left."""
    item = IncidentCertificate.objects.select_related("incident").filter(pk=item_id).first()
    if item is None:
        return
    incident = item.incident
    if incident.revoke_old and item.revoked_at is None and item.old_version_id:
        now = timezone.now()
        if not IncidentCertificate.objects.filter(pk=item.pk, revoked_at__isnull=True).filter(
                Q(revoke_tried_at__isnull=True) | Q(revoke_tried_at__lt=now - REVOKE_RETRY / 2)
        ).update(revoke_tried_at=now):
            return  # another worker is at it
        try:
            revocation.revoke_version(version_id=item.old_version_id,
                                      reason=incident.revocation_reason,
                                      by=incident.created_by)
        except revocation.AlreadyRevoked:
            pass
        except revocation.RevocationRefused as exc:
            IncidentCertificate.objects.filter(pk=item.pk).update(
                **stored_fields("last_error", message("incident.revocation_failed", error=exc)))
            return
        IncidentCertificate.objects.filter(pk=item.pk).update(revoked_at=timezone.now())
    complete_if_done(incident.pk)


# -- progress and report ----------------------------------------------------------------


@dataclass
class Progress:
    total: int
    replaced: int
    revoked: int
    failing: int
    in_progress: int
    reasons: list[tuple[str, int]]
    time_left: datetime.timedelta
    rate_per_minute: float | None
    expected_end: datetime.datetime | None
    last_replaced_at: datetime.datetime | None

    @property
    def seconds_left(self) -> float:
        return self.time_left.total_seconds()

    @property
    def remaining(self) -> int:
        return self.total - self.replaced

    @property
    def percent(self) -> int:
        return round(100 * self.replaced / self.total) if self.total else 100

    @property
    def late(self) -> bool:
        return self.expected_end is not None and self.time_left.total_seconds() >= 0 and \
            self.expected_end > timezone.now() + self.time_left


def progress(incident: Incident, *, now: datetime.datetime | None = None) -> Progress:
    now = now or timezone.now()
    items = IncidentCertificate.objects.filter(incident=incident)
    open_run = RenewalRun.objects.filter(certificate=OuterRef("certificate_id"),
                                         status__in=RenewalRun.OPEN)
    total = items.count()
    replaced = items.filter(replaced_at__isnull=False).count()
    revoked = items.filter(revoked_at__isnull=False).count()
    failing_items = items.filter(replaced_at__isnull=True, failures__gt=0).exclude(
        Exists(open_run))
    failing = failing_items.count()
    reasons: dict[str, int] = {}
    for text, said, params in failing_items.values_list(
            "last_error", "last_error_key", "last_error_params")[:1000]:
        # In the reader's language: the same cause reads the same for every item.
        key = str(Message(said, params or {}, text)).split("\n")[0][:200]
        reasons[key] = reasons.get(key, 0) + 1
    last = items.aggregate(last=Max("replaced_at"))["last"]
    elapsed = (now - incident.created_at).total_seconds()
    rate = replaced / elapsed * 60 if replaced and elapsed > 0 else None
    expected = None
    if rate and total > replaced:
        expected = now + datetime.timedelta(minutes=(total - replaced) / rate)
    return Progress(total=total, replaced=replaced, revoked=revoked, failing=failing,
                    in_progress=total - replaced - failing,
                    reasons=sorted(reasons.items(), key=lambda kv: -kv[1])[:10],
                    time_left=incident.deadline - now, rate_per_minute=rate,
                    expected_end=expected, last_replaced_at=last)


REPORT_COLUMNS = ("certificate", "common_name", "hosts", "old_serial", "new_serial",
                  "replaced_at", "old_version_revoked_at", "failures", "last_error")


def report_rows(incident: Incident) -> list[list[str]]:
    """One row per certificate: what was replaced when, and what failed."""
    hosts: dict[int, list[str]] = {}
    for certificate_id, host in Deployment.objects.filter(
            certificate__incident_items__incident=incident).values_list(
            "certificate_id", "host__name").order_by("host__name"):
        hosts.setdefault(certificate_id, []).append(host)
    rows = []
    for values in IncidentCertificate.objects.filter(incident=incident).order_by("pk").values_list(
            "certificate_id", "certificate__common_name", "old_version__serial",
            "new_version__serial", "replaced_at", "revoked_at", "failures", "last_error"):
        certificate_id, name, old, new, replaced, revoked, failures, error = values
        rows.append([str(certificate_id), name, " ".join(hosts.get(certificate_id, [])),
                     _serial(old), _serial(new), replaced.isoformat() if replaced else "",
                     revoked.isoformat() if revoked else "", str(failures), error])
    return rows


def _serial(serial: str | None) -> str:
    return CertificateVersion(serial=serial).serial_hex if serial else ""
