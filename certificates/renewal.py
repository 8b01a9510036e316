"""Automatic renewal: finding what is due, opening one run per certificate, and
carrying a run through deposit check, issuance, charge and deployment.

The database is the source of truth, never Celery: a run is claimed with a
guarded UPDATE, backoff lives in `next_attempt_at`, and a run whose worker died
is found by its expired lease and taken up again. Every step is idempotent, so
a run executed twice issues once (the ACME order is resumed), charges once (the
ledger reference is unique) and deploys once (hosts already serving the version
are skipped).
"""

import datetime
import logging

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Exists, F, OuterRef, Q
from django.db.models.functions import Coalesce
from django.utils import timezone
from django.utils.translation import gettext as _

from . import alerts, deposit, issuance, renewal_limits
from .deployment import (
    NothingToDeploy,
    deploy_certificate,
    forget_old_requests,
    outcome_of,
    queue_certificate,
)
from .models import (
    Certificate,
    Deployment,
    DeployRequest,
    Notification,
    Order,
    RenewalRun,
)
from .signals import announce
from .steps import Step, StepStatus

logger = logging.getLogger(__name__)

BACKOFF = [datetime.timedelta(minutes=1), datetime.timedelta(minutes=10),
           datetime.timedelta(minutes=100), datetime.timedelta(days=1)]
# A certificate held for lack of money is looked at again this often, in case
# the price changed; a top-up releases it at once.
DEPOSIT_RECHECK = datetime.timedelta(hours=1)
# Reminders for a failing renewal, nearest first: the smallest one crossed is sent.
REMINDER_DAYS = (3, 14)


def backoff(failures: int) -> datetime.timedelta:
    """1 min, 10 min, 100 min, then daily."""
    return BACKOFF[min(max(failures, 1), len(BACKOFF)) - 1]


# -- finding and starting work ----------------------------------------------------


def due_certificates(now=None):
    """Certificates whose renewal time, or next attempt after a failure, has come,
    and that have no open run. Served by the two partial indexes on Certificate."""
    now = now or timezone.now()
    open_run = RenewalRun.objects.filter(certificate=OuterRef("pk"),
                                         status__in=RenewalRun.OPEN)
    return (
        Certificate.objects.filter(Certificate.due(now)).exclude(Exists(open_run))
    )


def scan(*, now=None, limit=500) -> list[int]:
    """Opens a run for each due certificate and enqueues it; returns the run ids.

    The runs are inserted together (one statement, where one at a time cost a
    savepoint, an insert and a release each). If a certificate got an open run
    since it was found due (another scan, a person's "renew now"), the
    constraint refuses the whole insert, and the runs are opened one at a
    time instead, skipping those that have one."""
    from .tasks import renew  # noqa: PLC0415 - tasks imports this module

    ids = list(due_certificates(now).order_by(
        Coalesce("next_attempt_at", "renew_after").asc(nulls_first=True)
    ).values_list("pk", flat=True)[:limit])
    if not ids:
        return []
    lease_until = timezone.now() + _lease()
    try:
        with transaction.atomic():
            runs = RenewalRun.objects.bulk_create([
                RenewalRun(certificate_id=pk, trigger=RenewalRun.Trigger.SCHEDULE,
                           lease_until=lease_until) for pk in ids])
            opened = [run.pk for run in runs]
            transaction.on_commit(lambda: [renew.delay(pk) for pk in opened])
    except IntegrityError:
        runs = [start_run(certificate_id=pk, trigger=RenewalRun.Trigger.SCHEDULE)
                for pk in ids]
        opened = [run.pk for run in runs if run is not None]
    return opened


def start_run(*, certificate_id, trigger, requested_by=None, enqueue=True) -> RenewalRun | None:
    """Opens a run and enqueues it once the transaction commits; None when the
    certificate has an open run already (the partial unique constraint says so,
    so two scans racing each other cannot both open one)."""
    from .tasks import renew  # noqa: PLC0415 - tasks imports this module

    try:
        with transaction.atomic():
            # A queued run's lease is its message's: past it, the message was lost.
            run = RenewalRun.objects.create(certificate_id=certificate_id, trigger=trigger,
                                            requested_by=requested_by,
                                            lease_until=timezone.now() + _lease())
            if enqueue:
                transaction.on_commit(lambda: renew.delay(run.pk))
    except IntegrityError:
        return None
    return run


def _start_by_person(*, certificate_id, by, trigger, force, enqueue) -> RenewalRun | None:
    """Opens a run a person asked for, past the checks of `renewal_limits`. The
    run carries ``forced`` for the caller's audit."""
    certificate = Certificate.objects.select_related("ca_account").get(pk=certificate_id)
    forced = renewal_limits.check_window(certificate, force=force)
    with transaction.atomic():
        renewal_limits.check_daily_limit(certificate)
        run = start_run(certificate_id=certificate_id, trigger=trigger, requested_by=by,
                        enqueue=enqueue)
    if run is not None:
        run.forced = forced
    return run


def run_inline(*, certificate_id, trigger=RenewalRun.Trigger.MANUAL, requested_by=None,
               force=False):
    """A whole run in this process, for `manage.py renew`: deposit check, issuance,
    charge, deployment. Returns the finished run, or None if one is open already.
    Raises renewal_limits.NotDue or PaidIssuanceLimit as renew_now does."""
    if RenewalRun.objects.filter(certificate_id=certificate_id,
                                 status__in=RenewalRun.OPEN).exists():
        return None
    run = _start_by_person(certificate_id=certificate_id, by=requested_by, trigger=trigger,
                           force=force, enqueue=False)
    if run is None:
        return None
    forced = run.forced
    execute(run_id=run.pk, deploy_inline=True)
    run.refresh_from_db()
    run.forced = forced
    return run


def renew_now(*, certificate_id, by=None, trigger=RenewalRun.Trigger.MANUAL,
              force=False) -> RenewalRun:
    """A person's "renew now": starts at once, whatever the backoff. Returns the
    new run (``run.forced`` when it renews outside the window), or the one
    already open. Outside the renewal window it raises renewal_limits.NotDue
    unless ``force`` (only administrators may force: the caller checks); past
    the organisation's daily number of paid issuances, PaidIssuanceLimit."""
    run = RenewalRun.objects.filter(certificate_id=certificate_id,
                                    status__in=RenewalRun.OPEN).first()
    if run is None:
        run = _start_by_person(certificate_id=certificate_id, by=by, trigger=trigger,
                               force=force, enqueue=True)
    if run is None:  # opened by someone else a moment ago
        run = RenewalRun.objects.filter(certificate_id=certificate_id,
                                        status__in=RenewalRun.OPEN).first()
    if run is not None and not hasattr(run, "forced"):
        run.forced = False
    return run


def recover_stale_runs(*, now=None) -> list[int]:
    """Runs whose worker died (their lease ran out while running), and queued
    runs whose message was lost, are enqueued again."""
    from .tasks import renew  # noqa: PLC0415

    now = now or timezone.now()
    forget_old_requests(now=now)
    stale = RenewalRun.objects.filter(status__in=RenewalRun.OPEN).filter(
        Q(lease_until__lt=now) | Q(lease_until__isnull=True, created_at__lt=now - _lease()))
    requeued = []
    deposit.close_reservations_of_ended_runs()
    for run_id, lease_until in stale.values_list("pk", "lease_until"):
        # Back to queued with a fresh lease, guarded: each lost run is enqueued
        # once per lease, however often this runs and however long the backlog.
        taken = RenewalRun.objects.filter(pk=run_id, lease_until=lease_until).update(
            status=RenewalRun.Status.QUEUED, lease_until=now + _lease())
        if taken:
            logger.warning("renewal run %s lost its worker or message; enqueued again", run_id)
            renew.delay(run_id)
            requeued.append(run_id)
    return requeued


# -- carrying a run through -------------------------------------------------------


def _lease() -> datetime.timedelta:
    return datetime.timedelta(seconds=settings.RENEWAL_LEASE_SECONDS)


def claim(run_id, *, now=None) -> RenewalRun | None:
    """Takes a queued run, or a running one whose lease ran out; None if another
    worker holds it or it has finished."""
    now = now or timezone.now()
    taken = RenewalRun.objects.filter(pk=run_id).filter(
        Q(status=RenewalRun.Status.QUEUED)
        | Q(status=RenewalRun.Status.RUNNING, lease_until__lt=now)
    ).update(status=RenewalRun.Status.RUNNING, started_at=Coalesce("started_at", now),
             lease_until=now + _lease(), attempts=F("attempts") + 1)
    return RenewalRun.objects.select_related("certificate__ca_account").get(pk=run_id) \
        if taken else None


def execute(*, run_id, deploy_inline=False) -> RenewalRun | None:
    """The ACME half of a run: deposit reservation, issuance, charge. Then the
    deployment half is enqueued on the deployment queue (or run here)."""
    run = claim(run_id)
    if run is None:
        return None
    try:
        return _issue_and_charge(run, deploy_inline)
    except Exception as exc:  # noqa: BLE001 - whatever it was, the run must end
        return fail_unexpectedly(run, exc)


def _issue_and_charge(run, deploy_inline):
    from .tasks import deploy_run  # noqa: PLC0415

    if run.attempts > 1:
        run.step(Step.RESUME, StepStatus.DONE,
                 _("Taken up again (attempt %(n)d).") % {"n": run.attempts})
    certificate = run.certificate
    if run.version_id is None and _needs_issuance(run, certificate):
        # Held before anything is ordered, released if nothing is issued.
        missing = deposit.reserve(run=run)
        if missing > 0:
            return _hold_for_deposit(run, certificate, missing)
        try:
            issuance.issue(run=run)
        except issuance.IssuanceFailed as exc:
            return fail(run, exc)
    if run.version_id is not None:
        charged = deposit.charge_for_version(version=run.version, run=run)
        if charged is not None:
            run.step(Step.CHARGE, StepStatus.DONE,
                     f"{charged.amount} {certificate.ca_account.currency}")
            _activate_order(certificate)
    if deploy_inline:
        return deploy(run_id=run.pk, wait=True)
    transaction.on_commit(lambda: deploy_run.delay(run.pk))
    return run


def deploy(*, run_id, wait=False) -> RenewalRun | None:
    """The deployment half: every host not yet serving the current version.

    With ``wait`` (manage.py renew), installed here and the run concluded at
    once. Otherwise queued for each host: whoever holds a busy host installs it
    with the rest of that host's queue, and whoever answers the run's last
    request concludes the run (``conclude_deployment``), so no worker thread
    sits waiting for a host."""
    run = RenewalRun.objects.select_related("certificate").filter(
        pk=run_id, status=RenewalRun.Status.RUNNING).first()
    if run is None:
        return None
    try:
        return _deploy(run, wait)
    except Exception as exc:  # noqa: BLE001 - whatever it was, the run must end
        return fail_unexpectedly(run, exc)


def _deploy(run, wait):
    certificate = run.certificate
    pending = _hosts_not_serving(certificate)
    if not pending:
        return succeed(run)
    try:
        if wait:
            outcomes = deploy_certificate(certificate_id=certificate.pk, run_id=run.pk,
                                          host_ids=pending)
            return _conclude(run, outcomes)
        # Answers left from an earlier attempt of this run (its worker died).
        earlier = DeployRequest.objects.filter(run=run)
        if earlier.exists():
            earlier.delete()
        queue_certificate(certificate_id=certificate.pk, run=run, host_ids=pending)
    except NothingToDeploy as exc:
        return fail(run, issuance.IssuanceFailed(str(exc), transient=False))
    return run


def conclude_deployment(run_id) -> RenewalRun | None:
    """Once every request queued for the run has its answer: alerts, and the run
    succeeded or failed. Called by whoever answered the last request; if two
    answer at once, the one that deletes the requests concludes."""
    requests = list(DeployRequest.objects.filter(run_id=run_id, awaited=False)
                    .select_related("host", "version"))
    if not requests or any(request.finished_at is None for request in requests):
        return None
    deleted, _by_model = DeployRequest.objects.filter(
        pk__in=[request.pk for request in requests]).delete()
    if deleted != len(requests):
        return None
    run = RenewalRun.objects.select_related("certificate").filter(
        pk=run_id, status=RenewalRun.Status.RUNNING).first()
    if run is None:
        return None
    try:
        return _conclude(run, [outcome_of(request) for request in requests])
    except Exception as exc:  # noqa: BLE001 - whatever it was, the run must end
        return fail_unexpectedly(run, exc)


def _conclude(run, outcomes) -> RenewalRun:
    certificate = run.certificate
    for outcome in outcomes:
        if outcome.error_kind == "NotServed":
            extra = {"host": outcome.host_name, "expected": outcome.expected_fingerprint,
                     "served": outcome.served_fingerprint}
            alerts.notify(Notification.Kind.NOT_SERVED, certificate=certificate, run=run,
                          extra=extra)
            announce("deployment.not_served", organization=certificate.organization,
                     payload={**_about(certificate, run), **extra})
    failed = [o for o in outcomes if not o.ok]
    if failed:
        message = "; ".join(f"{o.host_name}: {o.error}" for o in failed)
        return fail(run, issuance.IssuanceFailed(
            _("Deployment failed on %(count)d host(s): %(hosts)s")
            % {"count": len(failed), "hosts": message},
            transient=all(o.transient for o in failed)))
    return succeed(run)


def _about(certificate, run) -> dict:
    return {"certificate": certificate.pk, "common_name": certificate.common_name,
            "names": certificate.names(), "run": run.pk if run else None}


def _needs_issuance(run, certificate) -> bool:
    if run.trigger != RenewalRun.Trigger.SCHEDULE or certificate.current_version_id is None:
        return True
    # A scheduled run after a failed deployment only deploys what was issued.
    return certificate.renew_after is None or certificate.renew_after <= timezone.now()


def _hosts_not_serving(certificate) -> list[int]:
    return list(Deployment.objects.filter(certificate=certificate).exclude(
        last_version_id=certificate.current_version_id, served=True,
        last_status=Deployment.Status.DEPLOYED).values_list("host_id", flat=True))


def _activate_order(certificate) -> None:
    # An order's validity starts when its certificate is issued and installed.
    Order.objects.filter(certificate=certificate, status=Order.Status.PENDING).update(
        status=Order.Status.ISSUED)


def succeed(run) -> RenewalRun:
    now = timezone.now()
    Certificate.objects.filter(pk=run.certificate_id).update(
        failure_count=0, next_attempt_at=None, held_for_deposit=False)
    Order.objects.filter(certificate_id=run.certificate_id, status=Order.Status.ISSUED,
                         activated_at__isnull=True).update(status=Order.Status.ACTIVE,
                                                           activated_at=now)
    certificate = Certificate.objects.select_related("organization", "current_version").get(
        pk=run.certificate_id)
    version = certificate.current_version
    deposit.close_reservation(run=run)
    announce("renewal.succeeded", organization=certificate.organization, payload={
        **_about(certificate, run), "serial": version.serial if version else "",
        "not_after": version.not_after if version else None})
    # The run ends last, so that whoever waits for it finds everything in place.
    RenewalRun.objects.filter(pk=run.pk).update(status=RenewalRun.Status.SUCCEEDED,
                                                finished_at=now, lease_until=None)
    run.status = RenewalRun.Status.SUCCEEDED
    return run


def fail(run, exc: issuance.IssuanceFailed) -> RenewalRun:
    """Records the failure, sets the backoff (a permanent error waits a day, so
    as not to spend the CA's failed-validation allowance) and alerts."""
    fields = issuance.failure_fields(exc)
    for name, value in fields.items():
        setattr(run, name, value)
    certificate = Certificate.objects.get(pk=run.certificate_id)
    failures = certificate.failure_count + 1
    delay = backoff(failures) if exc.transient else BACKOFF[-1]
    next_attempt = timezone.now() + delay
    if run.retry_after and run.retry_after > next_attempt:
        next_attempt = run.retry_after
    Certificate.objects.filter(pk=certificate.pk).update(failure_count=failures,
                                                         next_attempt_at=next_attempt)
    if failures == 1:
        alerts.notify(Notification.Kind.RENEWAL_FAILED, certificate=certificate, run=run,
                      event="first-failure", extra={"next_attempt_at": next_attempt})
    announce("renewal.failed", organization=certificate.organization, payload={
        **_about(certificate, run), "error": run.error, "error_class": run.error_class,
        "failures": failures, "next_attempt_at": next_attempt})
    deposit.close_reservation(run=run)
    # The run ends last, so that whoever waits for it finds everything in place.
    RenewalRun.objects.filter(pk=run.pk).update(lease_until=None, **fields)
    return run


def fail_unexpectedly(run, exc: Exception) -> RenewalRun:
    """An error nobody sorted (a bug, a malformed certificate, a time limit) ends
    the run as failed like any other, with the error on the run and the usual
    alert, instead of leaving it running until its lease ends, again and again.
    Permanent: retrying at once would meet the same error. The one exception is
    the task's time limit: a CA or a host that answered slowly this time is no
    bug, so that failure is transient and retried on the usual backoff."""
    logger.exception("renewal run %s stopped on an unexpected error", run.pk)
    if not RenewalRun.objects.filter(pk=run.pk, status__in=RenewalRun.OPEN).exists():
        deposit.close_reservation(run=run)
        return run  # it had ended already; the error came after
    if isinstance(exc, SoftTimeLimitExceeded):
        error = issuance.IssuanceFailed(
            _("The run took longer than its time limit; it will be tried again."),
            transient=True)
    else:
        error = issuance.IssuanceFailed(
            _("Unexpected error: %(error)s") % {"error": f"{type(exc).__name__}: {exc}"},
            transient=False)
    try:
        return fail(run, error)
    except Exception:
        # Recording the failure failed too (the alert, the database): end the run
        # with what can still be written, so that it is not left running.
        logger.exception("renewal run %s: the failure could not be recorded in full", run.pk)
        deposit.release(run=run)
        RenewalRun.objects.filter(pk=run.pk, status__in=RenewalRun.OPEN).update(
            lease_until=None, **issuance.failure_fields(error))
        return run


def _hold_for_deposit(run, certificate, missing) -> RenewalRun:
    ca_account = certificate.ca_account
    now = timezone.now()
    detail = _("The deposit is short by %(missing)s %(currency)s.") % {
        "missing": missing, "currency": ca_account.currency}
    run.step(Step.DEPOSIT, StepStatus.FAILED, detail)
    Certificate.objects.filter(pk=certificate.pk).update(
        held_for_deposit=True, next_attempt_at=now + DEPOSIT_RECHECK)
    run.error = detail
    deposit.close_reservation(run=run)
    alerts.notify(Notification.Kind.DEPOSIT_INSUFFICIENT, certificate=certificate,
                  ca_account=ca_account, run=run,
                  extra={"balance": ca_account.available(), "price": ca_account.price,
                         "missing": missing})
    RenewalRun.objects.filter(pk=run.pk).update(
        status=RenewalRun.Status.INSUFFICIENT_DEPOSIT, error=detail, error_class="transient",
        finished_at=now, lease_until=None)
    run.status = RenewalRun.Status.INSUFFICIENT_DEPOSIT
    return run


# -- the periodic checks that need a person -----------------------------------------


def periodic_checks(*, now=None) -> None:
    """Deposit warnings, reminders for failing renewals as expiry nears, and
    certificates expiring with no successful renewal. Notifications de-duplicate,
    so running this often sends nothing twice."""
    now = now or timezone.now()
    from .models import CAAccount

    for ca_account in CAAccount.objects.filter(price__gt=0):
        outlook = deposit.forecast(ca_account, now=now)
        if outlook.is_low(ca_account.low_balance_threshold):
            extra = {"balance": outlook.balance, "threshold": ca_account.low_balance_threshold,
                     "needed_30d": outlook.needed_30d, "runs_out_on": outlook.runs_out_on}
            told = alerts.notify(Notification.Kind.DEPOSIT_LOW, ca_account=ca_account,
                                 extra=extra)
            if told:  # once a day, like the mail, not at every check
                announce("deposit.low", organization=ca_account.organization, payload={
                    "ca_account": ca_account.pk, "name": ca_account.name,
                    "currency": ca_account.currency, **extra})
    expiring = Certificate.objects.filter(
        expires_at__lte=now + datetime.timedelta(days=settings.EXPIRY_WARNING_DAYS),
        expires_at__gt=now, renew_after__lte=now,
    ).select_related("current_version", "ca_account")
    for certificate in expiring:
        days = certificate.days_left(now)
        if certificate.failure_count:
            last_run = certificate.runs.filter(status=RenewalRun.Status.FAILED).first()
            for threshold in REMINDER_DAYS:
                if days < threshold:
                    alerts.notify(Notification.Kind.RENEWAL_FAILED, certificate=certificate,
                                  run=last_run, once=True,
                                  event=f"{threshold}d:version-{certificate.current_version_id}")
                    break
        alerts.notify(Notification.Kind.EXPIRING, certificate=certificate,
                      event=f"version-{certificate.current_version_id}", extra={"days": days})
