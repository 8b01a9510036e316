"""Finding what is due and opening runs: the scheduled scan (with the intent a
retry keeps), a person's "renew now" and "deploy now", the same carried
through in this process for manage.py, and the recovery of lost runs.

Import rule: services import tasks and enqueue on commit; tasks import services
inside the function.
"""

from __future__ import annotations

import datetime
import logging
from collections.abc import Iterable
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import OuterRef, Q, QuerySet, Subquery
from django.db.models.functions import Coalesce
from django.utils import timezone
from django.utils.translation import gettext as _

from accounts.models import User
from certificates import tasks
from certificates.hosts import agents, deployment, leases
from certificates.hosts.deployment import NothingToDeploy
from certificates.models import (
    CAAccount,
    Certificate,
    DeployRequest,
    DNSCredential,
    RenewalRun,
    TargetHost,
)
from certificates.renewal import deposit, lifecycle, sending
from certificates.renewal import limits as renewal_limits
from certificates.renewal.run import execute

logger = logging.getLogger(__name__)

Intent = RenewalRun.Intent


# -- finding and starting work ----------------------------------------------------


def due_certificates(now: datetime.datetime | None = None) -> QuerySet[Certificate]:
    """Certificates whose renewal time, or next attempt after a failure, has come,
    and that have no open run. Served by the two partial indexes on Certificate."""
    now = now or timezone.now()
    return Certificate.objects.filter(Certificate.due(now)).exclude(
        pk__in=RenewalRun.objects.filter(status__in=RenewalRun.OPEN).values("certificate_id"))


def scheduled_intents(certificate_ids: Iterable[int], *,
                      now: datetime.datetime | None = None) -> dict[int, str]:
    """What a scheduled run of each certificate is for. Issue when it was never
    issued or its renewal time came; otherwise it is a retry, which keeps what
    is left of the last run's intent: issue again if that run issued nothing
    (a person's renewal that failed, one held for the deposit), else deploy."""
    now = now or timezone.now()
    last = RenewalRun.objects.filter(certificate=OuterRef("pk"),
                                     status__in=RenewalRun.FINAL).order_by("-created_at", "-pk")
    rows = Certificate.objects.filter(pk__in=certificate_ids).annotate(
        last_intent=Subquery(last.values("intent")[:1]),
        last_version=Subquery(last.values("version_id")[:1]),
    ).values_list("pk", "current_version_id", "renew_after", "last_intent", "last_version")
    intents: dict[int, str] = {}
    for pk, current, renew_after, last_intent, last_version in rows:
        if current is None or renew_after is None or renew_after <= now:
            intents[pk] = Intent.ISSUE
        elif last_intent == Intent.ISSUE and last_version is None:
            intents[pk] = Intent.ISSUE
        else:
            intents[pk] = Intent.DEPLOY
    return intents


def scan(*, now: datetime.datetime | None = None, limit: int = 500) -> list[int]:
    """Opens a run for each due certificate and enqueues it; returns the run ids.

    The runs are inserted together (one statement, where one at a time cost a
    savepoint, an insert and a release each). If a certificate got an open run
    since it was found due (another scan, a person's "renew now"), the
    constraint refuses the whole insert, and the runs are opened one at a
    time instead, skipping those that have one."""
    ids = list(due_certificates(now).order_by(
        Coalesce("next_attempt_at", "renew_after").asc(nulls_first=True)
    ).values_list("pk", flat=True)[:limit])
    if not ids:
        return []
    intents = scheduled_intents(ids, now=now)
    trigger = RenewalRun.Trigger.SCHEDULE
    try:
        opened = [run.pk for run in lifecycle.open_runs(intents, trigger=trigger)]
    except IntegrityError:
        runs = [lifecycle.open_run(certificate_id=pk, trigger=trigger, intent=intent)
                for pk, intent in intents.items()]
        opened = [run.pk for run in runs if run is not None]
    transaction.on_commit(lambda: [tasks.renew.delay(pk) for pk in opened])
    return opened


def retry_now(certificate_ids: Iterable[int] | QuerySet[Certificate, Any], *,
              now: datetime.datetime | None = None) -> int:
    """Ends the backoff of the failing certificates among `certificate_ids`, so
    that the next scan retries them; the number changed.

    Called when a person has changed what a failure may have come from (a CA
    account, a certificate, a host): a permanent failure waits a day, also after
    the fix. Certificates held for a top-up are left: only a top-up frees them.
    """
    now = now or timezone.now()
    return Certificate.objects.filter(
        pk__in=certificate_ids, failure_count__gt=0, held_for_deposit=False,
        next_attempt_at__gt=now).update(next_attempt_at=now)


def retry_after_change(changed: Certificate | TargetHost | CAAccount | DNSCredential) -> int:
    """`retry_now` for the certificates that a person's change of `changed` concerns."""
    if isinstance(changed, Certificate):
        return retry_now([changed.pk])
    if isinstance(changed, DNSCredential):
        concerned = Q(dns_credentials=changed)
    else:
        concerned = (Q(ca_account=changed) if isinstance(changed, CAAccount)
                     else Q(hosts=changed))
    # One UPDATE, the certificates concerned as its subquery.
    return retry_now(Certificate.objects.filter(concerned).values("pk"))


def start_run(*, certificate_id: int, trigger: str, requested_by: User | None = None,
              intent: str = Intent.ISSUE, hosts: list[int] | None = None,
              enqueue: bool = True) -> RenewalRun | None:
    """Opens a run and enqueues it once the transaction commits; None when the
    certificate has an open run already."""
    run = lifecycle.open_run(certificate_id=certificate_id, trigger=trigger, intent=intent,
                             requested_by=requested_by, hosts=hosts)
    if run is not None and enqueue:
        transaction.on_commit(lambda: tasks.renew.delay(run.pk))
    return run


def _open_run_of(certificate_id: int) -> RenewalRun | None:
    return RenewalRun.objects.filter(certificate_id=certificate_id,
                                     status__in=RenewalRun.OPEN).first()


def _start_by_person(*, certificate_id: int, by: User | None, trigger: str, force: bool,
                     enqueue: bool) -> RenewalRun | None:
    """Opens a run a person asked for, past the checks of `renewal_limits`. The
    run carries ``forced`` for the caller's audit."""
    certificate = Certificate.objects.select_related("ca_account").get(pk=certificate_id)
    renewal_limits.check_not_archived(certificate)
    forced = renewal_limits.check_window(certificate, force=force)
    with transaction.atomic():
        renewal_limits.check_daily_limit(certificate)
        run = start_run(certificate_id=certificate_id, trigger=trigger, requested_by=by,
                        enqueue=enqueue)
    if run is not None:
        run.forced = forced
    return run


def run_inline(*, certificate_id: int, trigger: str = RenewalRun.Trigger.MANUAL,
               requested_by: User | None = None, force: bool = False) -> RenewalRun | None:
    """A whole run in this process, for `manage.py renew`: deposit check, issuance,
    charge, deployment. Returns the finished run, or None if one is open already.
    Raises renewal_limits.NotDue or PaidIssuanceLimit as renew_now does."""
    if _open_run_of(certificate_id) is not None:
        return None
    run = _start_by_person(certificate_id=certificate_id, by=requested_by, trigger=trigger,
                           force=force, enqueue=False)
    if run is None:
        return None
    forced = run.forced
    run = execute(run_id=run.pk, inline=True) or run
    run.refresh_from_db()
    run.forced = forced
    return run


def renew_now(*, certificate_id: int, by: User | None = None,
              trigger: str = RenewalRun.Trigger.MANUAL,
              force: bool = False) -> RenewalRun | None:
    """A person's "renew now": starts at once, whatever the backoff. Returns the
    new run (``run.forced`` when it renews outside the window), or the one
    already open (None if that one ended between the two looks). Outside the
    renewal window it raises renewal_limits.NotDue unless ``force`` (only
    administrators may force: the caller checks); past the organisation's daily
    number of paid issuances, PaidIssuanceLimit; for an archived certificate,
    renewal_limits.Archived."""
    run = _open_run_of(certificate_id)
    if run is None:
        run = _start_by_person(certificate_id=certificate_id, by=by, trigger=trigger,
                               force=force, enqueue=True)
    if run is None:  # opened by someone else a moment ago
        run = _open_run_of(certificate_id)
    return run


class NotAHostOfTheCertificate(ValueError):
    """Hosts asked for that the certificate is not deployed to."""

    def __init__(self, bound: Iterable[int]) -> None:
        self.bound = sorted(bound)
        super().__init__(_("Choose among the certificate's hosts: %(ids)s.")
                         % {"ids": ", ".join(map(str, self.bound)) or _("none")})


class NoHosts(ValueError):
    pass


def deploy_now(*, certificate_id: int, by: User | None = None,
               host_ids: list[int] | None = None, trigger: str = RenewalRun.Trigger.MANUAL,
               enqueue: bool = True) -> RenewalRun:
    """A person's "deploy now" (the UI, the API, `manage.py deploy`): a deploy-only
    run of the current version to the certificate's hosts, or those of
    ``host_ids``, with steps and history like any other run. Returns it, or the
    run already open (``run.already_open``). Raises renewal_limits.Archived, NothingToDeploy (never
    issued), NoHosts, or NotAHostOfTheCertificate naming the allowed ids."""
    certificate = Certificate.objects.get(pk=certificate_id)
    renewal_limits.check_not_archived(certificate)
    if certificate.current_version_id is None:
        raise NothingToDeploy(_("This certificate has no issued version to deploy yet."))
    bound = set(certificate.deployments.values_list("host_id", flat=True))
    if not bound:
        raise NoHosts(_("This certificate has no target hosts."))
    if host_ids is not None and (not host_ids or set(host_ids) - bound):
        raise NotAHostOfTheCertificate(bound)
    hosts = sorted(set(host_ids)) if host_ids is not None else None
    # Twice at most: the open run that refused ours may end between the two looks.
    for _attempt in range(2):
        run = start_run(certificate_id=certificate_id, trigger=trigger, requested_by=by,
                        intent=Intent.DEPLOY, enqueue=enqueue, hosts=hosts)
        if run is not None:
            return run
        run = _open_run_of(certificate_id)
        if run is not None:
            run.already_open = True
            return run
    raise RuntimeError(f"certificate {certificate_id}: runs open and end too fast to join")


def deploy_inline(*, certificate_id: int, host_ids: list[int] | None = None,
                  by: User | None = None) -> RenewalRun | None:
    """`manage.py deploy`: a deploy-only run carried through in this process."""
    if _open_run_of(certificate_id) is not None:
        return None
    run = deploy_now(certificate_id=certificate_id, by=by, host_ids=host_ids, enqueue=False)
    if run.already_open:
        return None
    run = execute(run_id=run.pk, inline=True) or run
    run.refresh_from_db()
    return run


def recover_stale_runs(*, now: datetime.datetime | None = None) -> list[int]:
    """Runs whose worker died, and queued runs whose message was lost, are
    enqueued again; deploying runs whose drainer or conclusion was lost are
    drained again (never issued again). Requests of ended runs are forgotten."""
    now = now or timezone.now()
    deployment.forget_old_requests(now=now)
    agents.answer_unclaimed(now=now)
    deposit.close_reservations_of_ended_runs()
    requeued = lifecycle.requeue_lost(now=now)
    for run_id in requeued:
        logger.warning("renewal run %s lost its worker or message; enqueued again", run_id)
    sending.send_again(tasks.renew, requeued)
    redriven = lifecycle.redrive_deploying(now=now)
    for run_id in redriven:
        logger.warning("renewal run %s lost its deployment worker; drained again", run_id)
    sending.send_again(tasks.deploy_run, redriven)
    return requeued + redriven


def take_over_from_gone_workers(*, now: datetime.datetime | None = None) -> list[int]:
    """What a worker does as it starts: runs and hosts held by worker processes
    of this machine that no longer exist (killed, crashed, the machine restarted)
    are taken up at once instead of when their leases run out; then the usual
    recovery pass. Call it before this process holds anything (``leases.gone``
    counts this process's own pid as a previous life's)."""
    now = now or timezone.now()
    holders = set(RenewalRun.objects.filter(status=RenewalRun.Status.RUNNING)
                  .exclude(held_by="").values_list("held_by", flat=True))
    requeued = lifecycle.requeue_held_by([h for h in holders if leases.gone(h)], now=now)
    for run_id in requeued:
        logger.warning("renewal run %s was held by a worker that is gone; enqueued again", run_id)
    sending.send_again(tasks.renew, requeued)
    freed = leases.release_gone_owners()
    waiting = list(DeployRequest.objects.filter(
        host_id__in=freed, finished_at__isnull=True,
        run__status=RenewalRun.Status.DEPLOYING).values_list("run_id", flat=True).distinct())
    for run_id in waiting:
        logger.warning("renewal run %s waited on a host held by a worker that is gone; "
                       "drained again", run_id)
    sending.send_again(tasks.deploy_run, waiting)
    return requeued + waiting + recover_stale_runs(now=now)
