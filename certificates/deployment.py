"""Deploying certificate versions to target hosts, and recording what happened.

One session at a time per host (a lease on the TargetHost row), several hosts
at a time per certificate (a bounded thread pool). Certificates renewed
together queue for a host as DeployRequest rows, and whoever takes the lease
installs all of them in one session, with one config test and one reload
instead of one each. The database is touched only between network calls, in
autocommit: no transaction is held while talking SSH or TLS (house rule 4).
The steps on the host are in installer.py.
"""

from __future__ import annotations

import logging
import os
import random
import socket
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Exists, F, OuterRef, Q, TextField, Value
from django.db.models.functions import Concat
from django.utils import timezone
from django.utils.translation import gettext as _

from . import ssh
from .installer import Installer, InstallFailed, Item, planned_files
from .models import Certificate, Deployment, DeployRequest, RenewalRun, TargetHost
from .models.runs import held_steps
from .steps import Step, StepStatus

logger = logging.getLogger(__name__)

# How long a deployment waits for another one on the same host to finish.
LEASE_WAIT_SECONDS = 300
# Waiting deployments look again after 0.1-0.2 s: a deployment takes about a
# second, so half-second polls lost a third of a host's time; the jitter keeps
# several waiters from asking in step.
LEASE_POLL_SECONDS = (0.1, 0.2)

# The host's lease is extended at the next step after this many seconds.
LEASE_RENEW_SECONDS = 5
# A batch's steps wait at most this long to be written (the run's page shows
# them live, a moment late), so that each phase is one INSERT, not one per item.
STEP_HOLD_SECONDS = 0.5
# At most this many certificates go into one session on a host; the rest wait
# for the next. It bounds how long a lease is held between two steps' renewals
# (the TLS checks of a batch run in one step).
DEPLOY_BATCH_SIZE = 50

# on_step(host, step name, status, detail): for a caller that shows progress.
StepCallback = Callable[[TargetHost, str, str, str], None]


class NothingToDeploy(Exception):
    pass


class HostBusy(Exception):
    """Another deployment held the host's lease for longer than we wait."""

    transient = True


@dataclass(frozen=True)
class Outcome:
    host_id: int
    host_name: str
    status: str  # a Deployment.Status value
    error: str = ""
    # What went wrong, for code that reacts to it: "HostKeyMismatch",
    # "Unreachable", "CommandFailed", "NotServed", "RollbackFailed"...
    error_kind: str = ""
    transient: bool = False
    expected_fingerprint: str = ""
    served_fingerprint: str = ""

    @property
    def ok(self) -> bool:
        return self.status == Deployment.Status.DEPLOYED


# -- the services -----------------------------------------------------------------


def deploy_certificate(*, certificate_id: int, run_id: int | None = None,
                       host_ids: list[int] | None = None,
                       on_step: StepCallback | None = None) -> list[Outcome]:
    """Deploy the certificate's current version to its hosts (or those of
    ``host_ids``) and wait for the outcomes, DEPLOY_MAX_PARALLEL hosts at a time;
    one host failing does not stop the others. Outcomes are in host name order."""
    certificate, version, hosts = _what_to_deploy(certificate_id, host_ids)
    run = RenewalRun.objects.get(pk=run_id, certificate=certificate) if run_id else None

    def deploy_one(host):
        try:
            return deploy_version_to_host(version=version, host=host, run=run, on_step=on_step)
        except Exception as exc:  # a bug or a database error must not stop the other hosts
            logger.exception("deployment of %s to %s failed", certificate, host)
            return _outcome(host, version, Deployment.Status.FAILED, error=repr(exc),
                            kind=type(exc).__name__)

    return _on_each_host(hosts, deploy_one)


def queue_certificate(*, certificate_id: int, run: RenewalRun,
                      host_ids: list[int] | None = None) -> None:
    """Queue the certificate's current version for its hosts (or those of
    ``host_ids``) on behalf of ``run``, and install what is queued on each host
    that is free. Does not wait for a busy host: whoever holds it installs this
    request too, and the run is concluded by whoever answers its last request
    (``renewal.conclude_deployment``)."""
    certificate, version, hosts = _what_to_deploy(certificate_id, host_ids)
    # All at once: a run is concluded when its last request is answered, so none
    # may be answered before the others exist.
    with transaction.atomic():
        queued = [host for host in hosts if _queue(version, host, run, awaited=False)]

    def drain_one(host):
        try:
            drain(host)
        except Exception:  # the run is taken up again when its lease runs out
            logger.exception("deployments queued for %s failed", host)

    _on_each_host(queued, drain_one)
    _conclude_runs({run.pk})  # if every request was answered without a session


def _what_to_deploy(certificate_id, host_ids):
    certificate = Certificate.objects.select_related("current_version").get(pk=certificate_id)
    version = certificate.current_version
    if version is None:
        raise NothingToDeploy(
            _("%(certificate)s has no issued version to deploy yet.")
            % {"certificate": certificate}
        )
    version.certificate = certificate  # spares each thread a query
    hosts = certificate.hosts.order_by("name")
    if host_ids is not None:
        hosts = hosts.filter(pk__in=host_ids)
    return certificate, version, list(hosts)


def _on_each_host(hosts, action) -> list:
    if len(hosts) <= 1:  # most certificates have one host: no thread, no new connection
        return [action(host) for host in hosts]

    def one(host):
        try:
            return action(host)
        finally:
            connection.close()  # this thread's connection, which nobody else will close

    with ThreadPoolExecutor(max_workers=min(settings.DEPLOY_MAX_PARALLEL, len(hosts)),
                            thread_name_prefix="deploy") as pool:
        return list(pool.map(one, hosts))


def deploy_version_to_host(*, version, host: TargetHost, run: RenewalRun | None = None,
                           on_step: StepCallback | None = None) -> Outcome:
    """Install ``version`` on ``host``, prove it is served, roll back if not, and
    wait for it.

    The version joins the host's queue; whoever holds the host's lease installs
    everything queued in one go, this request included, so the outcome may come
    from another worker's session. Never raises for what the host or the network
    did: the Outcome says it, and the Deployment row and the run's steps record it.
    """
    request = _queue(version, host, run, awaited=True, on_step=on_step)
    if isinstance(request, Outcome):
        return request
    try:
        return _wait_for(request, host=host, version=version, on_step=on_step) or _finish(
            request.deployment, version, run,
            _host_busy(host, version, _reporter(run, host, on_step)))
    finally:
        DeployRequest.objects.filter(pk=request.pk).delete()


def _queue(version, host, run, *, awaited,
           on_step=None) -> DeployRequest | Outcome | None:
    """A request for ``version`` on ``host``. If the host's paths cannot take it,
    the failure is recorded at once: returned as an Outcome to one who waits,
    otherwise written on an answered request (and None returned)."""
    certificate = version.certificate
    if host.organization_id != certificate.organization_id:
        raise ValueError(f"host {host.pk} is not in the organisation of {certificate}")
    deployment, _created = Deployment.objects.get_or_create(certificate=certificate, host=host)
    try:
        planned_files(version, host)
    except InstallFailed as exc:  # the host's paths, not the network: fail before queueing
        _reporter(run, host, on_step)(Step.UPLOAD, StepStatus.FAILED, str(exc))
        outcome = _finish(deployment, version, run, _outcome(
            host, version, Deployment.Status.FAILED, error=str(exc), kind=exc.kind))
        if awaited:
            return outcome
        # Answered at once, so that the run is concluded like any other.
        request = DeployRequest.objects.create(host=host, deployment=deployment,
                                               version=version, run=run)
        _answer(request, host, outcome, record=False)
        return None
    return DeployRequest.objects.create(host=host, deployment=deployment, version=version,
                                        run=run, awaited=awaited)


def _wait_for(request: DeployRequest, *, host, version, on_step) -> Outcome | None:
    """Until ``request`` has an outcome: install what is queued whenever the host
    is free, or see another worker's session do it. None if the host stays busy
    for LEASE_WAIT_SECONDS."""
    deadline = time.monotonic() + LEASE_WAIT_SECONDS
    while True:
        drain(host, on_step={request.pk: on_step})
        done = DeployRequest.objects.filter(pk=request.pk, finished_at__isnull=False).first()
        if done is not None:
            return outcome_of(done, host=host, version=version)
        if time.monotonic() >= deadline:
            return None
        time.sleep(random.uniform(*LEASE_POLL_SECONDS))


def outcome_of(request: DeployRequest, *, host=None, version=None) -> Outcome:
    """The Outcome written on an answered request."""
    host, version = host or request.host, version or request.version
    return Outcome(host_id=host.pk, host_name=host.name, status=request.status,
                   error=request.error, error_kind=request.error_kind,
                   transient=request.transient, expected_fingerprint=version.fingerprint_sha256,
                   served_fingerprint=request.served_fingerprint)


def _host_busy(host, version, report) -> Outcome:
    exc = HostBusy(
        _("Another deployment to %(host)s has been running for over %(seconds)s "
          "seconds; try again later.") % {"host": host.name, "seconds": LEASE_WAIT_SECONDS})
    report(Step.LOCK, StepStatus.FAILED, str(exc))
    return _outcome(host, version, Deployment.Status.FAILED, error=str(exc),
                    kind="HostBusy", transient=True)


def drain(host: TargetHost, *, on_step: dict[int, StepCallback | None] | None = None) -> None:
    """If the host is free: take its lease and install what is queued, batch after
    batch, until nothing is, concluding the runs each batch answered. If it is
    busy, its holder will find our requests: it looks at the queue again after
    letting go."""
    owner = _lease_owner()
    while _take_lease(host, owner):
        try:
            while True:
                _linger(host)
                tried, runs = install_queued(host, owner=owner, on_step=on_step)
                # Now, not when the queue runs dry: under a steady stream of
                # renewals that could be long after these runs were done.
                _conclude_runs(runs)
                if not tried:
                    break
        finally:
            _release_lease(host, owner)
        # A request queued while we let go may have seen the lease still taken.
        if not DeployRequest.objects.filter(host=host, finished_at__isnull=True).exists():
            break


def _linger(host) -> None:
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


def _conclude_runs(run_ids) -> None:
    from .renewal import conclude_deployment  # noqa: PLC0415 - renewal imports this module

    for run_id in sorted(run_ids):
        try:
            conclude_deployment(run_id)
        except Exception:  # one run's alert must not keep the others from concluding
            logger.exception("concluding the deployment of run %s failed", run_id)


def install_queued(host: TargetHost, *, owner: str,
                   on_step: dict[int, StepCallback | None] | None = None
                   ) -> tuple[int, set[int]]:
    """Install the host's queued requests (up to DEPLOY_BATCH_SIZE) in one SSH
    session; the caller holds the host's lease as ``owner``. Each request gets
    its outcome, its Deployment row and its run's steps. Returns how many were
    tried, and the runs whose requests nobody waits for (to be concluded)."""
    on_step = on_step or {}
    queued = list(DeployRequest.objects.filter(host=host, finished_at__isnull=True)
                  .select_related("version__certificate", "deployment", "run")
                  .order_by("requested_at", "pk")[:DEPLOY_BATCH_SIZE])
    if not queued:
        return 0, set()
    # One installation per certificate: the newest version asked for. A request
    # for an older one (a "deploy now" overtaken by a renewal) is answered so.
    newest = {}
    for request in queued:
        current = newest.get(request.deployment_id)
        if current is None or request.version_id > current.version_id:
            newest[request.deployment_id] = request
    items = {}
    for request in newest.values():
        report = _reporter(request.run, host, on_step.get(request.pk))
        try:
            files = planned_files(request.version, host)
        except InstallFailed as exc:
            report(Step.UPLOAD, StepStatus.FAILED, str(exc))
            _answer(request, host, _outcome(host, request.version, Deployment.Status.FAILED,
                                            error=str(exc), kind=exc.kind))
            continue
        items[request.pk] = Item(version=request.version, files=files,
                                 sni=_sni_name(host, request.version.certificate),
                                 report=report)
    if items:
        _install_items(host, owner, list(items.values()))
    answered = {}
    for request in newest.values():
        item = items.get(request.pk)
        if item is not None:
            answered[request.deployment_id] = _answer(request, host, _item_outcome(host, item))
    for request in queued:
        if newest[request.deployment_id] is request:
            continue
        outcome = answered.get(request.deployment_id)
        if outcome is not None and request.version_id == newest[request.deployment_id].version_id:
            _answer(request, host, outcome, record=False)
        else:
            newer = newest[request.deployment_id].version
            _answer(request, host, _outcome(
                host, request.version, Deployment.Status.FAILED, kind="Superseded",
                error=_("A newer version (serial %(serial)s) was deployed instead.")
                % {"serial": newer.serial}), record=False)
    return len(queued), {r.run_id for r in queued if r.run_id and not r.awaited}


def _install_items(host, owner, items: list[Item]) -> None:
    renewed = [time.monotonic()]  # the lease was taken just now
    # The installer reports each phase for every item of the batch at once; the
    # steps are written together, before the next phase or after STEP_HOLD_SECONDS.
    with held_steps() as flush:

        def heartbeat(waiting=False):
            flush(max_age=0 if waiting else STEP_HOLD_SECONDS)
            # Each step may take up to a command timeout; the lease outlasts the
            # longest, so renewing every few seconds is enough and spares a write
            # for each of a batch's many small steps.
            if time.monotonic() - renewed[0] >= LEASE_RENEW_SECONDS:
                _renew_lease(host, owner)
                renewed[0] = time.monotonic()

        try:
            with ssh.connect(host) as session:
                detail = _("Host key %(fingerprint)s matches the pinned key.") % {
                    "fingerprint": host.host_key_fingerprint}
                for item in items:
                    item.report(Step.CONNECT, StepStatus.DONE, detail)
                Installer(session, host=host, items=items, heartbeat=heartbeat).install()
        except ssh.SSHError as exc:  # before the installer ran: the login
            for item in items:
                if item.error is None and not item.served:
                    item.report(Step.CONNECT, StepStatus.FAILED, str(exc))
                    item.error = exc


def _item_outcome(host, item: Item) -> Outcome:
    if item.error is None:
        return _outcome(host, item.version, Deployment.Status.DEPLOYED, served=item.served)
    exc = item.error
    rolled_back = getattr(exc, "rolled_back", False)
    return _outcome(host, item.version,
                    Deployment.Status.ROLLED_BACK if rolled_back else Deployment.Status.FAILED,
                    error=str(exc), kind=getattr(exc, "kind", "") or type(exc).__name__,
                    transient=exc.transient, served=getattr(exc, "served_fingerprint", ""))


def _answer(request: DeployRequest, host, outcome: Outcome, *, record=True) -> Outcome:
    """The outcome on the request (for its waiting deployment) and, unless another
    request of the same certificate already did, on the Deployment row and the run."""
    if record:
        _finish(request.deployment, request.version, request.run, outcome)
    DeployRequest.objects.filter(pk=request.pk).update(
        finished_at=timezone.now(), status=outcome.status, error=outcome.error,
        error_kind=outcome.error_kind, transient=outcome.transient,
        served_fingerprint=outcome.served_fingerprint)
    return outcome


def forget_old_requests(*, now=None) -> int:
    """Requests nobody will read: answered over an hour ago (their deployment's
    worker died before reading), or never answered and older than anyone waits.
    For the periodic recovery pass."""
    now = now or timezone.now()
    deleted, _by_model = DeployRequest.objects.filter(
        Q(finished_at__lt=now - timedelta(hours=1))
        | Q(finished_at__isnull=True,
            requested_at__lt=now - timedelta(seconds=2 * LEASE_WAIT_SECONDS))).delete()
    return deleted


# -- one deployment at a time per host ------------------------------------------


def host_lease_seconds() -> float:
    # Renewed before every step, so it only has to outlast the longest single
    # step: a rollback's chown of four files and its reload, or the TLS grace.
    # fujissl_portal/checks.py keeps it within the deployment task's time limit.
    return (settings.SSH_CONNECT_TIMEOUT + 6 * settings.SSH_COMMAND_TIMEOUT
            + settings.DEPLOY_TLS_GRACE_SECONDS)


def _lease_length() -> timedelta:
    return timedelta(seconds=host_lease_seconds())


def _lease_owner() -> str:
    return f"{socket.gethostname()[:30]}:{os.getpid()}:{uuid.uuid4().hex[:12]}"


def _renew_lease(host, owner) -> None:
    renewed = TargetHost.objects.filter(pk=host.pk, deploy_lock_owner=owner).update(
        deploy_locked_until=timezone.now() + _lease_length())
    if not renewed:  # a step outlasted the lease and another deployment took it
        logger.warning("deployment lease on %s lost by %s", host, owner)


def _release_lease(host, owner) -> None:
    TargetHost.objects.filter(pk=host.pk, deploy_lock_owner=owner).update(
        deploy_lock_owner="", deploy_locked_until=None)


def _take_lease(host: TargetHost, owner: str) -> bool:
    """A guarded UPDATE takes the lease only if it is free or has run out, so two
    workers can never both hold it; a dead worker's lease simply expires."""
    now = timezone.now()
    free = Q(deploy_locked_until__isnull=True) | Q(deploy_locked_until__lte=now)
    return bool(TargetHost.objects.filter(free, pk=host.pk).update(
        deploy_lock_owner=owner, deploy_locked_until=now + _lease_length()))


# -- recording --------------------------------------------------------------------


def _sni_name(host: TargetHost, certificate: Certificate) -> str:
    if host.tls_sni_name:
        return host.tls_sni_name
    # A wildcard is no name to ask for; prefer a plain name of the certificate.
    plain = [name for name in certificate.names() if not name.startswith("*.")]
    return plain[0] if plain else certificate.common_name.removeprefix("*.")


def _reporter(run, host, on_step):
    def report(name, status, detail=""):
        if run is not None:
            run.step(name, status, detail, host=host)
        if on_step is not None:
            on_step(host, name, status, detail)
    return report


def _outcome(host, version, status, *, error="", kind="", transient=False,
             served="") -> Outcome:
    return Outcome(host_id=host.pk, host_name=host.name, status=status, error=error,
                   error_kind=kind, transient=transient,
                   expected_fingerprint=version.fingerprint_sha256, served_fingerprint=served)


def _finish(deployment: Deployment, version, run, outcome: Outcome) -> Outcome:
    _record(deployment, version, outcome)
    _log_on_run(run, outcome)
    return outcome


def _record(deployment: Deployment, version, outcome: Outcome) -> None:
    now = timezone.now()
    fields = {"last_status": outcome.status, "last_error": outcome.error}
    if outcome.ok:
        fields.update(last_version=version, last_deployed_at=now)
    if outcome.served_fingerprint:  # a TLS check completed a handshake
        fields.update(served=outcome.served_fingerprint == outcome.expected_fingerprint,
                      served_fingerprint=outcome.served_fingerprint, last_checked_at=now)
    # update(), not save(): only these fields, so a concurrent edit of the row stays.
    Deployment.objects.filter(pk=deployment.pk).update(**fields)


def _log_on_run(run: RenewalRun | None, outcome: Outcome) -> None:
    if run is None:
        return
    line = f"{outcome.host_name}: {outcome.status}"
    if outcome.error:
        line += f": {outcome.error.splitlines()[0]}"
    # Concatenated in SQL: hosts deployed in parallel append without losing lines.
    RenewalRun.objects.filter(pk=run.pk).update(
        log=Concat(F("log"), Value(line + "\n"), output_field=TextField()))
