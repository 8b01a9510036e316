"""The host side: deploying certificate versions to target hosts, one session at a
time per host, and recording what happened.

One protocol: a run queues a DeployRequest per host (``requests_for``, written
by the lifecycle's ``to_deploying`` in the same transaction as the status);
whoever takes a host's lease (``drain``) installs everything queued there in one
SSH session, with one config test and one reload for the batch, writes each
outcome on its request, lets the host go, and only then enqueues the conclusion
of every run whose requests are all answered (``tasks.conclude_runs``). Nobody
waits for a busy host: its holder installs our requests with its next batch.
This module never imports renewal; concluding a run is renewal's work.

The database is touched only between network calls, in autocommit: no
transaction is held while talking SSH or TLS (house rule 4). The steps on the
host are in installer.py.

Import rule: services import tasks and enqueue on commit; tasks import services
inside the function.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from functools import partial
from typing import TypeVar

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Exists, OuterRef, Q
from django.utils import timezone

from certificates import tasks, validators
from certificates.hosts import leases, outcomes
from certificates.hosts.installer import Installer, InstallFailed, Item, planned_files
from certificates.hosts.items import Report
from certificates.hosts.outcomes import OUTCOME_FIELDS as OUTCOME_FIELDS
from certificates.hosts.outcomes import Outcome as Outcome
from certificates.hosts.outcomes import outcome_of as outcome_of
from certificates.messages import message, stored_fields
from certificates.models import (
    Certificate,
    Deployment,
    DeployRequest,
    RenewalRun,
    TargetHost,
)
from certificates.models.runs import held_steps
from certificates.seams import ssh
from certificates.seams.errors import FailureKind, PortalError
from certificates.steps import Step, StepStatus

logger = logging.getLogger(__name__)

T = TypeVar("T")

# The host's lease is extended at the next step after this many seconds.
LEASE_RENEW_SECONDS = 5
# A batch's steps wait at most this long to be written (the run's page shows
# them live, a moment late), so that each phase is one INSERT, not one per item.
# Before a step that can take long (config test, reload, TLS check) they are
# written at once.
STEP_HOLD_SECONDS = 0.5
# At most this many certificates go into one session on a host; the rest wait
# for the next. It bounds how long a lease is held between two steps' renewals
# (the TLS checks of a batch run in one step).
DEPLOY_BATCH_SIZE = 50
# Answered requests of ended runs are kept this long (the admin shows them).
KEEP_ANSWERED = timedelta(hours=1)


class NothingToDeploy(PortalError):
    kind = FailureKind.NOTHING_TO_DEPLOY




# -- queueing ---------------------------------------------------------------------


def requests_for(run: RenewalRun | None, certificate: Certificate,
                 host_ids: list[int] | None = None) -> list[DeployRequest]:
    """Unsaved requests for the certificate's current version on each of its
    hosts (or those of ``host_ids``), for the lifecycle to write with the
    run's move to deploying."""
    version = certificate.current_version
    if version is None:
        raise NothingToDeploy(message("deploy.no_version", certificate=str(certificate)))
    # A certificate's hosts are its Deployment rows: one query gives both.
    bound = Deployment.objects.filter(certificate=certificate).select_related("host")
    if host_ids is not None:
        bound = bound.filter(host_id__in=host_ids)
    requests = []
    for row in bound.order_by("host__name"):
        if row.host.organization_id != certificate.organization_id:
            raise ValueError(f"host {row.host_id} is not in the organisation of {certificate}")
        requests.append(DeployRequest(host=row.host, deployment=row, version=version, run=run))
    return requests


def hosts_waiting(run_id: int) -> list[TargetHost]:
    """The hosts where requests of the run wait for an answer."""
    return list(TargetHost.objects.filter(
        Exists(DeployRequest.objects.filter(host=OuterRef("pk"), run_id=run_id,
                                            finished_at__isnull=True))).order_by("name"))


def drain_hosts(hosts: list[TargetHost]) -> None:
    """``drain`` on each host, DEPLOY_MAX_PARALLEL at a time; one host failing
    does not stop the others (its requests wait for the next drain)."""

    def drain_one(host: TargetHost) -> None:
        try:
            drain(host)
        except Exception:  # the run's lease runs out and recovery drains it again
            logger.exception("deployments queued for %s failed", host)

    _on_each_host(hosts, drain_one)


def _on_each_host(hosts: list[TargetHost], action: Callable[[TargetHost], T]) -> list[T]:
    if len(hosts) <= 1:  # most certificates have one host: no thread, no new connection
        return [action(host) for host in hosts]

    def one(host: TargetHost) -> T:
        try:
            return action(host)
        finally:
            connection.close()  # this thread's connection, which nobody else will close

    with ThreadPoolExecutor(max_workers=min(settings.DEPLOY_MAX_PARALLEL, len(hosts)),
                            thread_name_prefix="deploy") as pool:
        return list(pool.map(one, hosts))






def drain(host: TargetHost) -> None:
    """If the host is free: take its lease, install a batch of what is queued,
    let the host go, then enqueue the conclusion of each run the batch
    answered; again while anything is queued. If the host is busy, its holder
    will find our requests: it looks at the queue again after letting go.

    The lease is let go after every batch, so that a run's conclusion (alerts,
    e-mail, webhooks) never runs while the host is held, and so that under a
    steady stream of renewals runs end batch by batch, not when the queue runs dry.
    """
    if host.is_agent:
        return  # its agent takes the requests at its next check-in (hosts/agents.py)
    owner = leases.new_owner()
    while leases.take(host, owner):
        try:
            _linger(host)
            tried, runs = install_queued(host, owner=owner)
        finally:
            leases.release(host, owner)
        enqueue_conclusions(runs)
        # A request queued while we held the host may have seen it taken.
        if not DeployRequest.objects.filter(host=host, finished_at__isnull=True).exists():
            break


def _linger(host: TargetHost) -> None:
    """While renewals of certificates bound for this host are running but have
    not queued their deployment yet (they are still being issued), wait a moment
    (at most DEPLOY_BATCH_LINGER_SECONDS after the oldest request) so that they
    join this batch: one reload for several certificates costs the host far
    less than one each. A lone deployment does not wait."""
    limit = settings.DEPLOY_BATCH_LINGER_SECONDS
    if limit <= 0:
        return
    oldest = (DeployRequest.objects.filter(host=host, finished_at__isnull=True)
              .order_by("requested_at").values_list("requested_at", flat=True).first())
    if oldest is None:
        return
    on_the_way = RenewalRun.objects.filter(
        status=RenewalRun.Status.RUNNING, certificate__deployments__host=host,
    ).exclude(Exists(DeployRequest.objects.filter(run=OuterRef("pk"), host=host)))
    until = oldest + timedelta(seconds=limit)
    while timezone.now() < until and on_the_way.exists():
        time.sleep(min(0.1, max((until - timezone.now()).total_seconds(), 0)))


def enqueue_conclusions(run_ids: Iterable[int]) -> None:
    """The runs whose requests are all answered are concluded by a task of their
    own, one message for the batch (each run concluded on its own there). If two
    drains answer a run's last two requests at once, both enqueue it, and the
    lifecycle's guarded move to the final status lets one of them act. An
    incident's runs are concluded in a message of their own at the incident's
    priority (INCIDENT_TASK_PRIORITY), as their issuance and deployment were:
    their conclusion marks each replacement done and lets the old version be
    revoked, and must not wait behind routine work."""
    done = list(RenewalRun.objects.filter(
        pk__in=run_ids, status=RenewalRun.Status.DEPLOYING,
    ).exclude(Exists(DeployRequest.objects.filter(run=OuterRef("pk"), finished_at__isnull=True)))
        .order_by("pk").values_list("pk", "incident_id"))
    urgent = [pk for pk, incident_id in done if incident_id is not None]
    routine = [pk for pk, incident_id in done if incident_id is None]
    if urgent:
        transaction.on_commit(partial(tasks.conclude_runs.apply_async, (urgent,),
                                      priority=settings.INCIDENT_TASK_PRIORITY))
    if routine:
        transaction.on_commit(partial(tasks.conclude_runs.delay, routine))


def install_queued(host: TargetHost, *, owner: str) -> tuple[int, set[int]]:
    """Install the host's queued requests (up to DEPLOY_BATCH_SIZE) in one SSH
    session; the caller holds the host's lease as ``owner``. Each request gets
    its outcome, its Deployment row and its run's steps. Returns how many were
    tried, and the runs they belong to."""
    queued = list(DeployRequest.objects.filter(host=host, finished_at__isnull=True)
                  .select_related("version__certificate", "deployment", "run")
                  .order_by("requested_at", "pk")[:DEPLOY_BATCH_SIZE])
    if not queued:
        return 0, set()
    newest = newest_per_certificate(queued)
    items = _planned_items(host, newest.values())
    if items:
        _install_items(host, owner, list(items.values()))
    answered = {request.deployment_id: answer(request, host, _item_outcome(host, item))
                for request in newest.values() if (item := items.get(request.pk)) is not None}
    for request in queued:
        if newest[request.deployment_id] is not request:
            answer_older(request, host, newest[request.deployment_id],
                          answered.get(request.deployment_id))
    return len(queued), {r.run_id for r in queued if r.run_id}


def newest_per_certificate(queued: list[DeployRequest]) -> dict[int, DeployRequest]:
    """One installation per certificate: the newest version asked for. A request
    for an older one (a "deploy now" overtaken by a renewal) is answered so."""
    newest: dict[int, DeployRequest] = {}
    for request in queued:
        current = newest.get(request.deployment_id)
        if current is None or request.version_id > current.version_id:
            newest[request.deployment_id] = request
    return newest


def _planned_items(host: TargetHost, requests: Iterable[DeployRequest]) -> dict[int, Item]:
    """An Item per request whose files the host's paths can take; the others are
    answered as failed at once."""
    items: dict[int, Item] = {}
    for request in requests:
        report = reporter(request.run, host)
        try:
            files = planned_files(request.version, host)
        except InstallFailed as exc:
            report(Step.UPLOAD, StepStatus.FAILED, exc)
            answer(request, host, outcomes.new_outcome(
                host, request.version, Deployment.Status.FAILED, error=exc, kind=exc.kind))
            continue
        items[request.pk] = Item(version=request.version, files=files,
                                 sni=sni_name(host, request.version.certificate),
                                 report=report)
    return items


def answer_older(request: DeployRequest, host: TargetHost, newest: DeployRequest,
                  outcome: Outcome | None) -> None:
    """A request that was not the one installed: the same version shares its
    outcome; an older one was superseded."""
    if outcome is not None and request.version_id == newest.version_id:
        answer(request, host, outcome, record=False)
        return
    answer(request, host, outcomes.new_outcome(
        host, request.version, Deployment.Status.FAILED, kind=FailureKind.SUPERSEDED,
        error=message("deploy.superseded", serial=newest.version.serial_hex)), record=False)


def _install_items(host: TargetHost, owner: str, items: list[Item]) -> None:
    renewed = [time.monotonic()]  # the lease was taken just now
    # The installer reports each phase for every item of the batch at once; the
    # steps are written together, before the next phase or after STEP_HOLD_SECONDS.
    with held_steps() as flush:

        def heartbeat(waiting: bool = False) -> None:
            # Before a step that can take long, what is held is written at once:
            # the run's page must not stop at "install" during a slow reload.
            flush(max_age=0 if waiting else STEP_HOLD_SECONDS)
            # Each step may take up to a command timeout; the lease outlasts the
            # longest, so renewing every few seconds is enough and spares a write
            # for each of a batch's many small steps.
            if time.monotonic() - renewed[0] >= LEASE_RENEW_SECONDS:
                leases.renew(host, owner)
                renewed[0] = time.monotonic()

        try:
            with ssh.connect(host) as session:
                detail = message("deploy.host_key_matches",
                                 fingerprint=host.host_key_fingerprint)
                for item in items:
                    item.report(Step.CONNECT, StepStatus.DONE, detail)
                Installer(session, host=host, items=items, heartbeat=heartbeat).install()
        except ssh.SSHError as exc:  # before the installer ran: the login
            for item in items:
                if item.error is None and not item.served:
                    item.report(Step.CONNECT, StepStatus.FAILED, exc)
                    item.error = exc


def _item_outcome(host: TargetHost, item: Item) -> Outcome:
    if item.error is None:
        return outcomes.new_outcome(host, item.version, Deployment.Status.DEPLOYED,
                                    served=item.served)
    exc = item.error
    if isinstance(exc, InstallFailed):
        rolled_back, served = exc.rolled_back, exc.served_fingerprint
    else:  # the login, before the installer ran
        rolled_back, served = False, ""
    return outcomes.new_outcome(host, item.version,
                    Deployment.Status.ROLLED_BACK if rolled_back else Deployment.Status.FAILED,
                    error=exc, kind=exc.kind, transient=exc.transient, served=served)


def answer(request: DeployRequest, host: TargetHost, outcome: Outcome, *,
            record: bool = True) -> Outcome:
    """The outcome on the request (for its waiting deployment) and, unless another
    request of the same certificate already did, on the Deployment row and the run."""
    if record:
        outcomes.record(request.deployment, request.version, request.run, outcome)
    DeployRequest.objects.filter(pk=request.pk).update(
        finished_at=timezone.now(), status=outcome.status,
        **stored_fields("error", outcome.message),
        error_kind=outcome.error_kind, transient=outcome.transient,
        served_fingerprint=outcome.served_fingerprint)
    return outcome


def forget_old_requests(*, now: datetime | None = None) -> int:
    """Requests nobody will read: those of ended runs (or of none), answered or
    queued over KEEP_ANSWERED ago. A live run's request is never deleted,
    however deep the host's queue: its run concludes when it is answered."""
    now = now or timezone.now()
    ended = Q(run__isnull=True) | Q(run__status__in=RenewalRun.FINAL)
    old = Q(finished_at__lt=now - KEEP_ANSWERED) | Q(finished_at__isnull=True,
                                                    requested_at__lt=now - KEEP_ANSWERED)
    deleted, _by_model = DeployRequest.objects.filter(ended, old).delete()
    return deleted


def sni_name(host: TargetHost, certificate: Certificate) -> str:
    """The name the TLS check asks for. An IP-address certificate's is its
    address: a TLS client sends no SNI for an address (RFC 6066, section 3;
    Python's ssl leaves it out), so the check sees what a client that
    connects by address sees."""
    if host.tls_sni_name:
        return host.tls_sni_name
    # A wildcard is no name to ask for; prefer a plain name of the certificate,
    # a DNS name over an address where it has both.
    plain = [name for name in certificate.names() if not name.startswith("*.")]
    dns_names = [name for name in plain if not validators.is_ip_address(name)]
    if plain:
        return (dns_names or plain)[0]
    return certificate.common_name.removeprefix("*.")


def reporter(run: RenewalRun | None, host: TargetHost) -> Report:
    def report(name: str, status: str, detail: object = "") -> None:
        if run is not None:
            run.step(name, status, detail, host=host)
    return report








