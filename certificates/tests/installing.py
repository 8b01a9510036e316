"""Installing a version on a host from a test, through the one protocol the
portal uses (a request queued for the host, drained here), and what the
deployment tests share: the files a testbed host holds, several certificates
for one host, holding and letting go of a host."""

import os
import stat
import threading
from datetime import timedelta

from django.db import connection
from django.utils import timezone

from certificates import renewal
from certificates.hosts import deployment
from certificates.models import Deployment, DeployRequest, RenewalRun, TargetHost
from certificates.renewal import lifecycle
from certificates.tests import factories
from certificates.tests.factories import make_current, new_version


def install_now(version, host, run=None) -> deployment.Outcome | None:
    """Queue ``version`` for ``host`` (on behalf of ``run``), drain the host in
    this thread, and return the request's outcome; None if another holds the
    host (its holder installs the request with its next batch)."""
    row, _created = Deployment.objects.get_or_create(certificate=version.certificate, host=host)
    request = DeployRequest.objects.create(host=host, deployment=row, version=version, run=run)
    deployment.drain(host)
    request = DeployRequest.objects.select_related("host", "version").get(pk=request.pk)
    return deployment.outcome_of(request) if request.finished_at else None


def deploy_only_run(certificate, host_ids=None) -> RenewalRun:
    """A queued deploy-only run of the certificate."""
    return lifecycle.open_run(certificate_id=certificate.pk, trigger=RenewalRun.Trigger.MANUAL,
                              intent=RenewalRun.Intent.DEPLOY, hosts=host_ids)


def deploying_run(certificate=None, host_ids=None, *, run=None) -> RenewalRun:
    """A deploy-only run (or ``run``, queued) taken by a worker and moved to
    deploying, its requests queued on the certificate's hosts (or those of
    ``host_ids``), not drained."""
    run = lifecycle.claim((run or deploy_only_run(certificate, host_ids)).pk)
    assert lifecycle.to_deploying(run, deployment.requests_for(run, run.certificate, host_ids))
    return run


def outcomes_of(run) -> list[deployment.Outcome]:
    return [deployment.outcome_of(request) for request in DeployRequest.objects.filter(
        run=run, finished_at__isnull=False).select_related("host", "version")]


def conclude(run) -> RenewalRun:
    renewal.conclude(run.pk)
    run.refresh_from_db()
    return run


# -- what the deployment tests share ------------------------------------------------

DEPLOYED, FAILED, ROLLED_BACK = (Deployment.Status.DEPLOYED, Deployment.Status.FAILED,
                                 Deployment.Status.ROLLED_BACK)
# A deployment's steps on a host, in order; those that may take long are shown
# as started first.
DEPLOY_STEPS = [("connect", "done"), ("backup", "done"), ("upload", "done"),
                ("install", "done"), ("config_test", "started"), ("config_test", "done"),
                ("reload", "started"), ("reload", "done"), ("tls_check", "started"),
                ("tls_check", "done"), ("cleanup", "done")]
SITES = ["a.example.test", "b.example.test", "c.example.test"]


def mode_of(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def files_on(testbed) -> dict:
    """Every file nginx serves from or the portal backs up to: content and mode."""
    folders = (testbed.ssl_dir, testbed.backup_dir)
    return {path: (path.read_bytes(), mode_of(path))
            for folder in folders for path in sorted(folder.rglob("*")) if path.is_file()}


def live_files(testbed) -> dict:
    return {path: path.read_bytes() for path in (
        testbed.private_key_path, testbed.certificate_path, testbed.ca_bundle_path,
        testbed.fullchain_path)}


def backups(testbed) -> list:
    return sorted(p for p in testbed.backup_dir.iterdir()
                  if p.is_dir() and p.name[0].isdigit())


def closing_thread(target, *args) -> threading.Thread:
    """A thread that closes its own database connection when done, so that none is
    left open when the test database is dropped."""
    def run():
        try:
            target(*args)
        finally:
            connection.close()
    return threading.Thread(target=run)


def queue_and_release(host, runs):
    """Move each run to deploying while another worker holds the host, so that
    all of them queue; then let the host go and drain it. Returns the outcomes
    by certificate id."""
    hold(host)
    deploying = [deploying_run(run=run) for run in runs]
    assert DeployRequest.objects.filter(host=host, finished_at__isnull=True).count() == len(runs)
    let_go(host)
    deployment.drain(host)
    outcomes = {}
    for run in deploying:
        [outcomes[run.certificate_id]] = outcomes_of(run)
    return outcomes


def site_certificates(organization, ca, host, names, **version_options):
    runs, versions = [], {}
    for name in names:
        certificate = factories.certificate(organization, ca, common_name=name, sans=[name])
        Deployment.objects.create(certificate=certificate, host=host)
        version = new_version(certificate, name, **version_options.get(name, {}))
        make_current(certificate, version)
        versions[certificate.pk] = version
        runs.append(deploy_only_run(certificate))
    return runs, versions


def hold(host, owner="another-worker"):
    TargetHost.objects.filter(pk=host.pk).update(
        deploy_lock_owner=owner, deploy_locked_until=timezone.now() + timedelta(minutes=5))


def let_go(host):
    TargetHost.objects.filter(pk=host.pk).update(deploy_lock_owner="", deploy_locked_until=None)


def run_steps(run, name):
    return list(run.steps.filter(name=name))
