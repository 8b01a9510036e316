"""Deploying certificate versions to target hosts, and recording what happened.

One host at a time per host (a lease on the TargetHost row), several hosts
at a time per certificate (a bounded thread pool). The database is touched
only between network calls, in autocommit: no transaction is held while
talking SSH or TLS (house rule 4). The steps on the host are in installer.py.
"""

from __future__ import annotations

import logging
import os
import random
import socket
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import connection
from django.db.models import F, Q, TextField, Value
from django.db.models.functions import Concat
from django.utils import timezone
from django.utils.translation import gettext as _

from . import ssh
from .installer import Installer, InstallFailed, planned_files
from .models import Certificate, Deployment, RenewalRun, TargetHost

logger = logging.getLogger(__name__)

# How long a deployment waits for another one on the same host to finish.
LEASE_WAIT_SECONDS = 300
# Waiting deployments look again after 0.1-0.2 s: a deployment takes about a
# second, so half-second polls lost a third of a host's time; the jitter keeps
# several waiters from asking in step.
LEASE_POLL_SECONDS = (0.1, 0.2)

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
    ``host_ids``), DEPLOY_MAX_PARALLEL at a time; one host failing does not
    stop the others. Outcomes are in host name order."""
    certificate = Certificate.objects.select_related("current_version").get(pk=certificate_id)
    version = certificate.current_version
    if version is None:
        raise NothingToDeploy(
            _("%(certificate)s has no issued version to deploy yet.")
            % {"certificate": certificate}
        )
    version.certificate = certificate  # spares each thread a query
    run = RenewalRun.objects.get(pk=run_id, certificate=certificate) if run_id else None
    hosts = certificate.hosts.order_by("name")
    if host_ids is not None:
        hosts = hosts.filter(pk__in=host_ids)
    hosts = list(hosts)
    if not hosts:
        return []

    def deploy_one(host):
        try:
            return deploy_version_to_host(version=version, host=host, run=run, on_step=on_step)
        except Exception as exc:  # a bug or a database error must not stop the other hosts
            logger.exception("deployment of %s to %s failed", certificate, host)
            return _outcome(host, version, Deployment.Status.FAILED, error=repr(exc),
                            kind=type(exc).__name__)
        finally:
            connection.close()  # this thread's connection, which nobody else will close

    with ThreadPoolExecutor(max_workers=min(settings.DEPLOY_MAX_PARALLEL, len(hosts)),
                            thread_name_prefix="deploy") as pool:
        return list(pool.map(deploy_one, hosts))


def deploy_version_to_host(*, version, host: TargetHost, run: RenewalRun | None = None,
                           on_step: StepCallback | None = None) -> Outcome:
    """Install ``version`` on ``host``, prove it is served, roll back if not.

    Never raises for what the host or the network did: the Outcome says it,
    and the Deployment row and the run's steps record it.
    """
    certificate = version.certificate
    if host.organization_id != certificate.organization_id:
        raise ValueError(f"host {host.pk} is not in the organisation of {certificate}")
    deployment, _created = Deployment.objects.get_or_create(certificate=certificate, host=host)
    report = _reporter(run, host, on_step)
    try:
        files = planned_files(version, host)
    except InstallFailed as exc:  # the host's paths, not the network: fail before connecting
        report("upload", "failed", str(exc))
        return _finish(deployment, version, run, _outcome(
            host, version, Deployment.Status.FAILED, error=str(exc), kind=exc.kind))
    try:
        with host_lease(host) as renew, ssh.connect(host) as session:
            report("connect", "done", _("Host key %(fingerprint)s matches the pinned key.")
                   % {"fingerprint": host.host_key_fingerprint})

            def report_and_renew(name, status, detail):
                renew()  # each step may take up to a command timeout
                report(name, status, detail)

            installer = Installer(session, host=host, version=version, files=files,
                                  sni=_sni_name(host, certificate), report=report_and_renew)
            served = installer.install()
    except (HostBusy, ssh.SSHError) as exc:  # before the installer ran: lease, login
        report("lock" if isinstance(exc, HostBusy) else "connect", "failed", str(exc))
        outcome = _outcome(host, version, Deployment.Status.FAILED, error=str(exc),
                           kind=type(exc).__name__, transient=exc.transient)
    except InstallFailed as exc:
        status = (Deployment.Status.ROLLED_BACK if exc.rolled_back
                  else Deployment.Status.FAILED)
        outcome = _outcome(host, version, status, error=str(exc), kind=exc.kind,
                           transient=exc.transient, served=exc.served_fingerprint)
    else:
        outcome = _outcome(host, version, Deployment.Status.DEPLOYED, served=served)
    return _finish(deployment, version, run, outcome)


# -- one deployment at a time per host ------------------------------------------


def _lease_length() -> timedelta:
    # Renewed after every step, so it only has to outlast the longest single
    # step: a rollback's chown of four files and its reload, or the TLS grace.
    return timedelta(seconds=settings.SSH_CONNECT_TIMEOUT + 6 * settings.SSH_COMMAND_TIMEOUT
                     + settings.DEPLOY_TLS_GRACE_SECONDS)


@contextmanager
def host_lease(host: TargetHost) -> Iterator[Callable[[], None]]:
    """Hold the host's deployment lease; yields a function that renews it.

    A guarded UPDATE takes the lease only if it is free or has run out, so
    two workers can never both hold it; a dead worker's lease simply expires.
    """
    owner = f"{socket.gethostname()[:30]}:{os.getpid()}:{uuid.uuid4().hex[:12]}"
    deadline = time.monotonic() + LEASE_WAIT_SECONDS
    while not _take_lease(host, owner):
        if time.monotonic() >= deadline:
            raise HostBusy(
                _("Another deployment to %(host)s has been running for over %(seconds)s "
                  "seconds; try again later.")
                % {"host": host.name, "seconds": LEASE_WAIT_SECONDS}
            )
        time.sleep(random.uniform(*LEASE_POLL_SECONDS))

    def renew():
        renewed = TargetHost.objects.filter(pk=host.pk, deploy_lock_owner=owner).update(
            deploy_locked_until=timezone.now() + _lease_length())
        if not renewed:  # a step outlasted the lease and another deployment took it
            logger.warning("deployment lease on %s lost by %s", host, owner)

    try:
        yield renew
    finally:
        TargetHost.objects.filter(pk=host.pk, deploy_lock_owner=owner).update(
            deploy_lock_owner="", deploy_locked_until=None)


def _take_lease(host: TargetHost, owner: str) -> bool:
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
