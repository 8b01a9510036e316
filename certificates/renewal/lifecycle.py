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

A running run's lease is short (RENEWAL_LEASE_SECONDS) and renewed while its
worker lives (``keep_lease``), so a killed worker's run is taken up again within
a minute or two. A queued run's lease is its message's (RENEWAL_QUEUE_SECONDS):
past it, the message was lost. A deploying run's lease is renewed by the steps
its hosts record and, while one of its hosts is busy with an earlier batch, by
the recovery pass: a deep host queue delays a run, it never drops it.
"""

from __future__ import annotations

import datetime
import logging
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import Exists, F, OuterRef, Q, QuerySet
from django.db.models.functions import Coalesce
from django.utils import timezone

from accounts.models import User
from certificates.models import DeployRequest, RenewalRun, TargetHost

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


# -- opening ------------------------------------------------------------------------


def open_run(*, certificate_id: int, trigger: str, intent: str = RenewalRun.Intent.ISSUE,
             requested_by: User | None = None,
             hosts: list[int] | None = None) -> RenewalRun | None:
    """A new queued run; None when the certificate has an open run already (the
    partial unique constraint says so, so two scans racing each other cannot
    both open one). The caller enqueues it on commit."""
    try:
        with transaction.atomic():
            return RenewalRun.objects.create(
                certificate_id=certificate_id, trigger=trigger, intent=intent,
                requested_by=requested_by, hosts=hosts,
                lease_until=timezone.now() + queue_lease())
    except IntegrityError:
        return None


def open_runs(intents: dict[int, str], *, trigger: str) -> list[RenewalRun]:
    """Queued runs for many certificates ({certificate id: intent}) in one insert;
    raises IntegrityError if any of them has an open run (the caller falls back
    to ``open_run`` one at a time)."""
    lease_until = timezone.now() + queue_lease()
    with transaction.atomic():
        return RenewalRun.objects.bulk_create([
            RenewalRun(certificate_id=pk, trigger=trigger, intent=intent,
                       lease_until=lease_until) for pk, intent in intents.items()])


# -- a worker's hold on a run -----------------------------------------------------------


def claim(run_id: int, *, now: datetime.datetime | None = None) -> RenewalRun | None:
    """Queued (or running with its lease run out, when a lost message comes back)
    to running, with the next attempt number; None if another worker holds the
    run or it is no longer open."""
    now = now or timezone.now()
    taken = RenewalRun.objects.filter(pk=run_id).filter(
        Q(status=Status.QUEUED) | Q(status=Status.RUNNING, lease_until__lt=now)
    ).update(status=Status.RUNNING, started_at=Coalesce("started_at", now),
             lease_until=now + lease(), attempts=F("attempts") + 1)
    if not taken:
        return None
    return RenewalRun.objects.select_related("certificate__ca_account").get(pk=run_id)


def _held(run: RenewalRun, *statuses: str) -> QuerySet[RenewalRun]:
    """The run's row, if it is still in one of ``statuses`` at ``run``'s attempt."""
    return RenewalRun.objects.filter(pk=run.pk, status__in=statuses, attempts=run.attempts)


def extend_lease(run: RenewalRun) -> bool:
    return bool(_held(run, Status.RUNNING, Status.DEPLOYING).update(
        lease_until=timezone.now() + lease()))


@contextmanager
def keep_lease(run: RenewalRun) -> Iterator[None]:
    """Renews the run's lease every third of it while the block runs (a CA that
    validates slowly, a DNS server that propagates slowly), from a thread of its
    own: if the worker dies, so does the thread, and the run is taken up again
    once the short lease runs out."""
    stop = threading.Event()
    every = settings.RENEWAL_LEASE_SECONDS / 3

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
        taken = _held(run, Status.RUNNING).update(status=Status.DEPLOYING,
                                                  lease_until=timezone.now() + lease())
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
        | Q(lease_until__isnull=True, created_at__lt=now - queue_lease()))
    requeued: list[int] = []
    for run_id, lease_until in lost.values_list("pk", "lease_until"):
        if RenewalRun.objects.filter(
                pk=run_id, status__in=(Status.QUEUED, Status.RUNNING), lease_until=lease_until,
        ).update(status=Status.QUEUED, lease_until=now + queue_lease()):
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
    for run_id, lease_until, waiting in expired.annotate(waiting=Exists(busy_host)).values_list(
            "pk", "lease_until", "waiting"):
        if RenewalRun.objects.filter(pk=run_id, status=Status.DEPLOYING,
                                     lease_until=lease_until).update(lease_until=now + lease()):
            if not waiting:
                redriven.append(run_id)
    return redriven
