"""The life of a renewal run: every change of its status, each in one function.

    open ─▶ queued ─claim─▶ running ─to_deploying─▶ deploying ─finish─▶ succeeded
              ▲               │   │                    │                 failed
              └──requeue──────┘   └─finish─────────────┼───────────────▶ failed,
              (lease ran out)      (failed, or held    │                 insufficient_deposit
                                    for the deposit)   └─ redrive (lease ran out):
                                                          drained again, never re-issued

Each transition is one guarded UPDATE that says whether it took. It is guarded
on the status it leaves and, once a worker has claimed the run, on the attempt
number the claim gave: a worker whose lease ran out, and whose run another
worker took up since, can no longer change the run, whatever it still does.

Only this module writes ``RenewalRun.status``. The services (run.py, scheduling.py) call a
transition first and act only when it took: the one who ends a run sends its
alerts, once.

A running run's lease is short (RENEWAL_LEASE_SECONDS, or a tenth of the
certificate's validity left if that is less: policy.run_lease) and renewed while
its worker lives (``keep_lease``), so a killed worker's run is taken up again
well before the certificate expires; sooner still when a worker starts on the
same machine and finds the holder's process gone (``requeue_held_by``). A
queued run's lease is its message's (RENEWAL_QUEUE_SECONDS, bounded the same
way): past it, the message was lost. A deploying run's lease is renewed by the steps
its hosts record and, while one of its hosts is busy with an earlier batch, by
the recovery pass: a deep host queue delays a run, it never drops it.
"""

from __future__ import annotations

import datetime
import logging
import math
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import Exists, F, OuterRef, Q, QuerySet
from django.db.models.functions import Coalesce
from django.utils import timezone

from accounts.models import User
from certificates.hosts import leases
from certificates.models import Certificate, DeployRequest, Incident, RenewalRun, TargetHost
from certificates.renewal import policy

logger = logging.getLogger(__name__)

Status = RenewalRun.Status

# Which status may follow which (the DB-only tests walk this table).
ALLOWED: dict[str, set[str]] = {
    Status.QUEUED: {Status.RUNNING},
    Status.RUNNING: {Status.QUEUED, Status.DEPLOYING, Status.FAILED,
                     Status.INSUFFICIENT_DEPOSIT},
    Status.DEPLOYING: {Status.SUCCEEDED, Status.FAILED},
}


class NotAllowed(Exception):
    """A transition the lifecycle does not have (a programming error)."""


def lease() -> datetime.timedelta:
    return datetime.timedelta(seconds=settings.RENEWAL_LEASE_SECONDS)


def queue_lease() -> datetime.timedelta:
    return datetime.timedelta(seconds=settings.RENEWAL_QUEUE_SECONDS)


def _expiries(certificate_ids: Iterable[int]) -> dict[int, datetime.datetime | None]:
    return dict(Certificate.objects.filter(pk__in=list(certificate_ids))
                .values_list("pk", "expires_at"))


# -- opening ------------------------------------------------------------------------


def open_run(*, certificate_id: int, trigger: str, intent: str = RenewalRun.Intent.ISSUE,
             requested_by: User | None = None,
             hosts: list[int] | None = None) -> RenewalRun | None:
    """A new queued run; None when the certificate has an open run already (the
    partial unique constraint says so, so two scans racing each other cannot
    both open one). The caller enqueues it on commit."""
    now = timezone.now()
    expires_at = _expiries([certificate_id]).get(certificate_id)
    try:
        with transaction.atomic():
            return RenewalRun.objects.create(
                certificate_id=certificate_id, trigger=trigger, intent=intent,
                requested_by=requested_by, hosts=hosts,
                lease_until=now + policy.queue_lease(expires_at, now))
    except IntegrityError:
        return None


def open_runs(intents: dict[int, str], *, trigger: str) -> list[RenewalRun]:
    """Queued runs for many certificates ({certificate id: intent}) in one insert;
    raises IntegrityError if any of them has an open run (the caller falls back
    to ``open_run`` one at a time)."""
    now = timezone.now()
    expiries = _expiries(intents)
    with transaction.atomic():
        return RenewalRun.objects.bulk_create([
            RenewalRun(certificate_id=pk, trigger=trigger, intent=intent,
                       lease_until=now + policy.queue_lease(expiries.get(pk), now))
            for pk, intent in intents.items()])


# -- a worker's hold on a run -----------------------------------------------------------


# The run belongs to a paused incident: nobody takes it up until it resumes.
_paused_incident = Incident.objects.filter(pk=OuterRef("incident_id"),
                                           status=Incident.Status.PAUSED)


def claim(run_id: int, *, now: datetime.datetime | None = None,
          holder: str = "") -> RenewalRun | None:
    """Queued (or running with its lease run out, when a lost message comes back)
    to running, with the next attempt number, held by ``holder`` (this process,
    by default) for a lease that the certificate's validity left bounds; None if
    another worker holds the run or it is no longer open."""
    now = now or timezone.now()
    expires_at = Certificate.objects.filter(runs=run_id).values_list(
        "expires_at", flat=True).first()
    length = policy.run_lease(expires_at, now)
    taken = RenewalRun.objects.filter(pk=run_id).filter(
        Q(status=Status.QUEUED) | Q(status=Status.RUNNING, lease_until__lt=now)
    ).exclude(Exists(_paused_incident)).update(
        status=Status.RUNNING, started_at=Coalesce("started_at", now),
        lease_until=now + length, lease_seconds=math.ceil(length.total_seconds()),
        held_by=holder or leases.process_owner(), attempts=F("attempts") + 1)
    if not taken:
        return None
    return RenewalRun.objects.select_related("certificate__ca_account").get(pk=run_id)


def _held(run: RenewalRun, *statuses: str) -> QuerySet[RenewalRun]:
    """The run's row, if it is still in one of ``statuses`` at ``run``'s attempt."""
    return RenewalRun.objects.filter(pk=run.pk, status__in=statuses, attempts=run.attempts)


def extend_lease(run: RenewalRun) -> bool:
    return bool(_held(run, Status.RUNNING, Status.DEPLOYING).update(
        lease_until=timezone.now() + run.lease_length()))


@contextmanager
def keep_lease(run: RenewalRun) -> Iterator[None]:
    """Renews the run's lease every third of it while the block runs (a CA that
    validates slowly, a DNS server that propagates slowly), from a thread of its
    own: if the worker dies, so does the thread, and the run is taken up again
    once the short lease runs out."""
    stop = threading.Event()
    every = run.lease_length().total_seconds() / 3

    def renew() -> None:
        try:
            while not stop.wait(every):
                if not extend_lease(run):
                    return  # ended, or taken up by another attempt: nothing to keep
        except Exception:  # a database hiccup: the lease runs out, the run is retried
            logger.exception("the lease of renewal run %s could not be renewed", run.pk)
        finally:
            connection.close()  # this thread's own connection

    thread = threading.Thread(target=renew, name=f"lease-{run.pk}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def to_deploying(run: RenewalRun, requests: Iterable[DeployRequest] = ()) -> bool:
    """Running to deploying, with the run's deployment requests queued in the
    same transaction: a deploying run always has its requests, so recovery only
    ever has to drain hosts, never to decide what to deploy again."""
    with transaction.atomic():
        taken = _held(run, Status.RUNNING).update(
            status=Status.DEPLOYING, lease_until=timezone.now() + run.lease_length())
        if taken:
            DeployRequest.objects.bulk_create(list(requests))
    if taken:
        run.status = Status.DEPLOYING
    return bool(taken)


def finish(run: RenewalRun, status: str, **fields: object) -> bool:
    """Running or deploying to a final status, with ``fields`` (error, kind...)
    written in the same UPDATE. Call it inside the transaction that writes what
    the ending changes elsewhere (the certificate's failure count, the
    reservation), so that whoever waits for the run finds everything in place."""
    if status not in RenewalRun.FINAL:
        raise NotAllowed(f"{status} is not a final status")
    leaving = [before for before, after in ALLOWED.items() if status in after]
    now = timezone.now()
    taken = _held(run, *leaving).update(status=status, finished_at=now, lease_until=None,
                                        **fields)
    if taken:
        run.status, run.finished_at, run.lease_until = status, now, None
        for name, value in fields.items():
            setattr(run, name, value)
    return bool(taken)


# -- recovery -----------------------------------------------------------------------


def requeue_lost(*, now: datetime.datetime | None = None) -> list[int]:
    """Running runs whose worker died (their lease ran out) and queued runs whose
    message was lost go back to queued with a fresh lease; their ids are
    returned, to be enqueued again. Guarded on the lease each was found with:
    a run is enqueued once per lease, however often this runs."""
    now = now or timezone.now()
    lost = RenewalRun.objects.filter(status__in=(Status.QUEUED, Status.RUNNING)).filter(
        Q(lease_until__lt=now)
        | Q(lease_until__isnull=True, created_at__lt=now - queue_lease())).exclude(
        Q(status=Status.QUEUED) & Exists(_paused_incident))  # resuming enqueues those
    requeued: list[int] = []
    for run_id, lease_until, expires_at in lost.values_list(
            "pk", "lease_until", "certificate__expires_at"):
        if RenewalRun.objects.filter(
                pk=run_id, status__in=(Status.QUEUED, Status.RUNNING), lease_until=lease_until,
        ).update(status=Status.QUEUED, held_by="",
                 lease_until=now + policy.queue_lease(expires_at, now)):
            requeued.append(run_id)
    return requeued


def requeue_held_by(holders: Iterable[str], *,
                    now: datetime.datetime | None = None) -> list[int]:
    """Running runs held by ``holders`` (worker processes known to be gone) go
    back to queued at once, without waiting for their lease to run out; their
    ids are returned, to be enqueued again. Guarded on the holder and the
    attempt each was found with."""
    now = now or timezone.now()
    held = RenewalRun.objects.filter(status=Status.RUNNING, held_by__in=list(holders))
    requeued: list[int] = []
    for run_id, holder, attempts, expires_at in held.values_list(
            "pk", "held_by", "attempts", "certificate__expires_at"):
        if RenewalRun.objects.filter(
                pk=run_id, status=Status.RUNNING, held_by=holder, attempts=attempts,
        ).update(status=Status.QUEUED, held_by="",
                 lease_until=now + policy.queue_lease(expires_at, now)):
            requeued.append(run_id)
    return requeued


def redrive_deploying(*, now: datetime.datetime | None = None) -> list[int]:
    """Deploying runs whose lease ran out get a fresh one. Those with a request
    on a host that someone is draining just wait their turn; the others (their
    drainer died, or their answers wait for a conclusion that was lost) are
    returned, to be drained and concluded again. Never through issuance."""
    now = now or timezone.now()
    expired = RenewalRun.objects.filter(status=Status.DEPLOYING, lease_until__lt=now)
    # An agent host's requests wait for its agent's next check-in; the agent
    # host's own recovery answers them when the agent stays silent.
    busy_host = DeployRequest.objects.filter(
        Q(host__deploy_locked_until__gt=now) | Q(host__transport=TargetHost.Transport.AGENT),
        run=OuterRef("pk"), finished_at__isnull=True)
    redriven: list[int] = []
    for run_id, lease_until, seconds, waiting in expired.annotate(
            waiting=Exists(busy_host)).values_list("pk", "lease_until", "lease_seconds",
                                                   "waiting"):
        length = datetime.timedelta(seconds=seconds) if seconds else lease()
        if RenewalRun.objects.filter(pk=run_id, status=Status.DEPLOYING,
                                     lease_until=lease_until).update(lease_until=now + length):
            if not waiting:
                redriven.append(run_id)
    return redriven
