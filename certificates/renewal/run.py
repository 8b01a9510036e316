"""Carrying a run through: deposit reservation, issuance, charge and deployment,
and its end (succeeded, failed, held for the deposit).

The database is the source of truth, never Celery: every change of a run's
status is a guarded UPDATE in lifecycle.py, backoff lives in `next_attempt_at`,
and a run whose worker died is found by its expired lease and taken up again.
Every step is idempotent, so a run executed twice issues once (the ACME order
is resumed), charges once (the ledger reference is unique) and deploys once.

A run carries its intent (issue and deploy, or deploy only) and a retry keeps
what is left of it: a renewal that failed before issuing issues when retried,
one that issued and failed to deploy only deploys.

Import rule: services import tasks and enqueue on commit; tasks import services
inside the function.
"""

from __future__ import annotations

import datetime
import hashlib
import logging
import time
from decimal import Decimal
from typing import Any

from celery.exceptions import SoftTimeLimitExceeded
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from certificates import alerts, tasks
from certificates.hosts import deployment
from certificates.hosts.deployment import NothingToDeploy, Outcome, outcome_of
from certificates.incidents import outcomes as incident_outcomes
from certificates.messages import amount, message, message_payload, stored_fields
from certificates.models import (
    Certificate,
    Deployment,
    DeployRequest,
    Notification,
    Order,
    RenewalRun,
)
from certificates.renewal import challenges, deposit, fallback, issuance, lifecycle, policy, sending
from certificates.seams.errors import FailureKind, PortalError
from certificates.signals import announce
from certificates.steps import Step, StepStatus

logger = logging.getLogger(__name__)

Intent = RenewalRun.Intent
BACKOFF = [datetime.timedelta(minutes=1), datetime.timedelta(minutes=10),
           datetime.timedelta(minutes=100), datetime.timedelta(days=1)]
# A certificate held for lack of money is looked at again this often, in case
# the price changed; a top-up releases it at once.
DEPOSIT_RECHECK = datetime.timedelta(hours=1)
# How long `manage.py renew` and `deploy` wait for a host another worker holds.
INLINE_WAIT_SECONDS = 300


def backoff(failures: int) -> datetime.timedelta:
    """1 min, 10 min, 100 min, then daily (``fail`` caps each step at a quarter
    of the certificate's validity left: policy.capped_backoff)."""
    return BACKOFF[min(max(failures, 1), len(BACKOFF)) - 1]


class DeploymentFailed(PortalError):
    """Hosts did not take the certificate (not an issuance failure: the version
    was issued and charged, and a retry only deploys it)."""

    kind = FailureKind.DEPLOYMENT_FAILED


# -- carrying a run through -------------------------------------------------------


def execute(*, run_id: int, inline: bool = False) -> RenewalRun | None:
    """The first half of a run, on the ACME queue: deposit reservation, issuance
    and charge for a run that issues; then its deployment is queued on every host
    and drained on the deployment queue (or here, ``inline``)."""
    run = lifecycle.claim(run_id)
    if run is None:
        return None
    try:
        with lifecycle.keep_lease(run):
            return _carry(run, inline)
    except Exception as exc:  # noqa: BLE001 - whatever it was, the run must end
        return fail_unexpectedly(run, exc)


def _carry(run: RenewalRun, inline: bool) -> RenewalRun | None:
    if run.attempts > 1:
        run.step(Step.RESUME, StepStatus.DONE, message("run.resumed", n=run.attempts))
    if run.intent == Intent.ISSUE:
        if run.version_id is None:
            # Held before anything is ordered, released if nothing is issued.
            missing = deposit.reserve(run=run)
            if missing > 0:
                return _hold_for_deposit(run, run.certificate, missing)
            try:
                issuance.issue(run=run)
            except issuance.IssuanceFailed as exc:
                return fail(run, exc)
            finally:
                challenges.remove_leftovers(run)
        charge(run)
    return _start_deploying(run, inline)


def charge(run: RenewalRun) -> None:
    version = run.version
    if version is None:  # a programming error: a run is charged once it has issued
        raise ValueError(f"renewal run {run.pk} has no issued version to charge for")
    entry, created = deposit.charge_for_version(version=version, run=run)
    # A run taken up again finds its charge in the ledger: no second step.
    if created and entry is not None:
        # A charge is stored as a negative amount; the step says what was paid.
        run.step(Step.CHARGE, StepStatus.DONE, message(
            "run.charged", amount=amount(-entry.amount, run.certificate.ca_account.currency)))
    _activate_order(run.certificate)


def _start_deploying(run: RenewalRun, inline: bool) -> RenewalRun | None:
    certificate = run.certificate
    if run.intent == Intent.ISSUE:
        # What this run issued is the current version (one open run per certificate).
        certificate.current_version = run.version
    if run.intent == Intent.DEPLOY and run.hosts is not None:
        host_ids = run.hosts  # the hosts a person chose
    else:
        # Those not yet serving the current version; a retry whose hosts all
        # serve it now deploys to all of them again, as proof, rather than
        # succeeding with nothing done.
        host_ids = _hosts_not_serving(certificate) or None
    try:
        requests = deployment.requests_for(run, certificate, host_ids)
    except NothingToDeploy as exc:
        return fail(run, DeploymentFailed(exc, transient=False, kind=exc.kind))
    if not lifecycle.to_deploying(run, requests):
        return run  # a newer attempt holds the run
    if not requests:
        return conclude(run.pk)
    if inline:
        return _deploy_here(run)
    # An incident's run goes ahead of routine deployments, as its issuance did.
    transaction.on_commit(lambda: sending.send(tasks.deploy_run, run.pk,
                                               incident_id=run.incident_id))
    return run


def _deploy_here(run: RenewalRun) -> RenewalRun:
    """`manage.py renew` and `deploy`: drain the run's hosts in this process and
    conclude; a host another worker holds is installed by it, and we wait."""
    deployment.drain_hosts(deployment.hosts_waiting(run.pk))
    conclude(run.pk)
    deadline = time.monotonic() + INLINE_WAIT_SECONDS
    while time.monotonic() < deadline:
        run.refresh_from_db()
        if run.status != RenewalRun.Status.DEPLOYING:
            break
        time.sleep(0.2)
        conclude(run.pk)
    return run


def deploy(*, run_id: int) -> RenewalRun | None:
    """The second half of a run, on the deployment queue: drain each host where
    the run's requests wait. Whoever answers a run's last request enqueues its
    conclusion; a run whose requests were all answered already (its conclusion
    was lost) is concluded here."""
    if not RenewalRun.objects.filter(pk=run_id, status=RenewalRun.Status.DEPLOYING).exists():
        return None
    hosts = deployment.hosts_waiting(run_id)
    if hosts:
        deployment.drain_hosts(hosts)
        return None
    return conclude(run_id)


def conclude(run_id: int) -> RenewalRun | None:
    """Once every request of a deploying run has its answer: the run succeeds or
    fails, with its alerts. Several may call it for one run; the lifecycle's
    guarded move lets one of them act."""
    run = RenewalRun.objects.select_related(
        "certificate__organization", "certificate__current_version",
    ).filter(pk=run_id, status=RenewalRun.Status.DEPLOYING).first()
    if run is None:
        return None
    # What an outcome reads, not the versions' keys and chains.
    requests = list(DeployRequest.objects.filter(run_id=run_id).select_related(
        "host", "version").only(*deployment.OUTCOME_FIELDS))
    if any(request.finished_at is None for request in requests):
        return None
    try:
        return _conclude(run, [outcome_of(request) for request in requests])
    except Exception as exc:  # noqa: BLE001 - whatever it was, the run must end
        return fail_unexpectedly(run, exc)


def _conclude(run: RenewalRun, outcomes: list[Outcome]) -> RenewalRun:
    if not outcomes and run.intent == Intent.DEPLOY:
        return fail(run, DeploymentFailed(message("run.nothing_to_deploy"), transient=False,
                                          kind=FailureKind.NOTHING_TO_DEPLOY))
    failed = [o for o in outcomes if not o.ok]
    if failed:
        hosts = [message("run.host_failed", host=o.host_name, error=o.message) for o in failed]
        cause = ",".join(sorted(f"{o.host_id}:{o.error_kind}" for o in failed))
        ended = fail(run, DeploymentFailed(
            message("run.deploy_failed", count=len(failed), hosts=hosts),
            transient=all(o.transient for o in failed)),
            cause=f"deploy:{cause}")
    else:
        ended = succeed(run, run.certificate)  # loaded with what the ending reads
    if ended.ended_here:
        _tell_not_served(run, outcomes)
    return ended


def _tell_not_served(run: RenewalRun, outcomes: list[Outcome]) -> None:
    certificate = run.certificate
    for outcome in outcomes:
        if outcome.error_kind == FailureKind.NOT_SERVED:
            extra = {"host": outcome.host_name, "expected": outcome.expected_fingerprint,
                     "served": outcome.served_fingerprint}
            alerts.notify(Notification.Kind.NOT_SERVED, certificate=certificate, run=run,
                          extra=extra)
            announce("deployment.not_served", organization=certificate.organization,
                     payload={**_about(certificate, run), **extra})


def _about(certificate: Certificate, run: RenewalRun | None) -> dict[str, Any]:
    return {"certificate": certificate.pk, "common_name": certificate.common_name,
            "names": certificate.names(), "run": run.pk if run else None}


def _hosts_not_serving(certificate: Certificate) -> list[int]:
    return list(Deployment.objects.filter(certificate=certificate).exclude(
        last_version_id=certificate.current_version_id, served=True,
        last_status=Deployment.Status.DEPLOYED).values_list("host_id", flat=True))


def _activate_order(certificate: Certificate) -> None:
    # An order's validity starts when its certificate is issued and installed.
    Order.objects.filter(certificate=certificate, status=Order.Status.PENDING).update(
        status=Order.Status.ISSUED)


# -- ending a run -------------------------------------------------------------------
# Each ending moves the run first (lifecycle.finish, guarded) in one transaction
# with what it changes elsewhere; only the one whose move took alerts.


def succeed(run: RenewalRun, certificate: Certificate | None = None) -> RenewalRun:
    """Succeeded; the certificate stops failing if every host now serves its
    current version (a deploy-only run that fixed the cause clears it too)."""
    now = timezone.now()
    if certificate is None:
        certificate = Certificate.objects.select_related(
            "organization", "current_version").get(pk=run.certificate_id)
    with transaction.atomic():
        if not lifecycle.finish(run, RenewalRun.Status.SUCCEEDED):
            return run
        served = not _hosts_not_serving(certificate)
        if served:
            Certificate.objects.filter(pk=certificate.pk).update(
                failure_count=0, next_attempt_at=None, held_for_deposit=False)
        if run.incident_id:
            incident_outcomes.succeeded(run, certificate, served=served)
        Order.objects.filter(certificate_id=certificate.pk, status=Order.Status.ISSUED,
                             activated_at__isnull=True).update(status=Order.Status.ACTIVE,
                                                               activated_at=now)
        DeployRequest.objects.filter(run=run).delete()
        deposit.close_reservation(run=run)
    run.ended_here = True
    version = certificate.current_version
    announce("renewal.succeeded", organization=certificate.organization, payload={
        **_about(certificate, run), "serial": version.serial_hex if version else "",
        "not_after": version.not_after if version else None})
    return run


def _cause_event(cause: str) -> str:
    """A Notification event (64 characters at most) for a cause of failure."""
    event = f"cause:{cause}"
    if len(event) > 64:
        event = "cause:" + hashlib.sha256(cause.encode()).hexdigest()[:32]
    return event


def fail(run: RenewalRun, exc: PortalError, *, cause: str = "") -> RenewalRun:
    """Records the failure, sets the backoff (a transient error's step at most a
    quarter of the validity left; a permanent error waits a day, so as not to
    spend the CA's failed-validation allowance) and alerts: once per
    cause a day, so that a new cause is told even while the last one is."""
    fields = issuance.failure_fields(exc)
    problem_type = (exc.problem or {}).get("type", "")
    cause = (cause or f"{exc.kind}:{problem_type}")[:200]
    with transaction.atomic():
        if not lifecycle.finish(run, RenewalRun.Status.FAILED, failure_cause=cause, **fields):
            return run
        Certificate.objects.filter(pk=run.certificate_id).update(
            failure_count=F("failure_count") + 1)
        certificate = Certificate.objects.select_related("organization", "ca_account").get(
            pk=run.certificate_id)
        now = timezone.now()
        delay = BACKOFF[-1]
        if exc.transient:  # a permanent error waits for a person, however near expiry
            delay = policy.capped_backoff(backoff(certificate.failure_count),
                                          certificate.expires_at, now)
        next_attempt = now + delay
        if run.retry_after and run.retry_after > next_attempt:
            next_attempt = run.retry_after
        if run.incident_id:  # the backoff shortened to fit the incident's deadline
            next_attempt = incident_outcomes.failed(
                run, step=backoff(certificate.failure_count), now=now) or next_attempt
        Certificate.objects.filter(pk=certificate.pk).update(next_attempt_at=next_attempt)
        DeployRequest.objects.filter(run=run).delete()
        deposit.close_reservation(run=run)
    run.ended_here = True
    if fallback.after_failure(run, exc):
        next_attempt = timezone.now()  # at the fallback CA, at once
    alerts.notify(Notification.Kind.RENEWAL_FAILED, certificate=certificate, run=run,
                  event=_cause_event(cause), extra={"next_attempt_at": next_attempt})
    announce("renewal.failed", organization=certificate.organization, payload={
        **_about(certificate, run), **message_payload("error", run.error_message),
        "error_class": run.error_class,
        "failures": certificate.failure_count, "next_attempt_at": next_attempt})
    return run


def fail_unexpectedly(run: RenewalRun, exc: Exception) -> RenewalRun:
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
        error = PortalError(
            message("run.time_limit"),
            transient=True, kind=FailureKind.TIME_LIMIT)
    else:
        error = PortalError(
            message("run.unexpected", error=f"{type(exc).__name__}: {exc}"),
            transient=False, kind=FailureKind.UNEXPECTED)
    try:
        return fail(run, error)
    except Exception:
        # Recording the failure failed too (the alert, the database): end the run
        # with what can still be written, so that it is not left running.
        logger.exception("renewal run %s: the failure could not be recorded in full", run.pk)
        lifecycle.finish(run, RenewalRun.Status.FAILED, **issuance.failure_fields(error))
        deposit.release(run=run)
        return run


def _hold_for_deposit(run: RenewalRun, certificate: Certificate,
                      missing: Decimal) -> RenewalRun:
    ca_account = certificate.ca_account
    detail = message("run.deposit_short", missing=amount(missing, ca_account.currency))
    run.step(Step.DEPOSIT, StepStatus.FAILED, detail)
    with transaction.atomic():
        if not lifecycle.finish(run, RenewalRun.Status.INSUFFICIENT_DEPOSIT,
                                **stored_fields("error", detail),
                                error_class="transient", failure_kind=FailureKind.DEPOSIT):
            return run
        Certificate.objects.filter(pk=certificate.pk).update(
            held_for_deposit=True, next_attempt_at=timezone.now() + DEPOSIT_RECHECK)
        deposit.close_reservation(run=run)
    alerts.notify(Notification.Kind.DEPOSIT_INSUFFICIENT, certificate=certificate,
                  ca_account=ca_account, run=run,
                  extra={"balance": ca_account.available(), "price": ca_account.price,
                         "missing": missing})
    return run
