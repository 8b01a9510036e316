"""Deploying to real hosts (sshd + nginx of the testbed), proven by TLS handshakes."""

import grp
import os
import shutil
import stat
import tempfile
import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from certificates import renewal
from certificates.hosts import deployment, leases
from certificates.hosts.deployment import NothingToDeploy
from certificates.models import (
    Deployment,
    DeployRequest,
    Notification,
    RenewalRun,
    TargetHost,
)
from certificates.renewal import lifecycle
from certificates.steps import Step

from . import factories
from .factories import make_current, new_version, portal_host
from .installing import conclude, deploy_only_run, deploying_run, install_now, outcomes_of

DEPLOYED, FAILED, ROLLED_BACK = (Deployment.Status.DEPLOYED, Deployment.Status.FAILED,
                                 Deployment.Status.ROLLED_BACK)
# A deployment's steps on a host, in order; those that may take long are shown
# as started first.
DEPLOY_STEPS = [("connect", "done"), ("backup", "done"), ("upload", "done"),
                ("install", "done"), ("config_test", "started"), ("config_test", "done"),
                ("reload", "started"), ("reload", "done"), ("tls_check", "started"),
                ("tls_check", "done"), ("cleanup", "done")]


@pytest.fixture
def ca(organization):
    return factories.ca_account(organization)


@pytest.fixture
def host(organization, target_host):
    return portal_host(organization, target_host)


@pytest.fixture
def certificate(organization, ca, target_host):
    return factories.certificate(organization, ca, common_name=target_host.sni_name,
                                 sans=[target_host.sni_name])


@pytest.fixture
def version(certificate, target_host):
    version = new_version(certificate, target_host.sni_name)
    make_current(certificate, version)
    return version


@pytest.fixture
def fast_grace(settings):
    """A short TLS grace period, for tests where the new leaf never comes."""
    settings.DEPLOY_TLS_GRACE_SECONDS = 1.5


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


# -- a deployment that takes ------------------------------------------------------


@pytest.mark.django_db
def test_a_deployment_makes_nginx_serve_the_new_leaf(host, target_host, version):
    outcome = install_now(version, host)

    assert outcome.ok, outcome.error
    assert outcome.served_fingerprint == version.fingerprint_sha256
    target_host.wait_for_served_leaf(version.fingerprint_sha256)  # our own handshake
    assert target_host.private_key_path.read_text() == version.private_key
    assert target_host.certificate_path.read_text() == version.leaf_pem()
    assert target_host.ca_bundle_path.read_text() == version.intermediates_pem()
    assert target_host.fullchain_path.read_text() == version.fullchain_pem()
    assert mode_of(target_host.private_key_path) == 0o600
    assert mode_of(target_host.fullchain_path) == 0o644
    row = Deployment.objects.get(certificate=version.certificate, host=host)
    assert (row.last_status, row.served, row.served_fingerprint, row.last_version) == (
        DEPLOYED, True, version.fingerprint_sha256, version)
    assert row.last_deployed_at and row.last_checked_at and not row.last_error


@pytest.mark.django_db
def test_it_backs_up_the_previous_files_before_replacing_them(host, target_host, version):
    before = live_files(target_host)

    assert install_now(version, host).ok

    [batch] = backups(target_host)
    # One folder per session on the host, one subfolder per certificate in it.
    [folder] = batch.iterdir()
    certificate = version.certificate
    assert folder.name == f"{certificate.common_name}-{certificate.pk}"
    assert mode_of(batch) == mode_of(folder) == 0o700
    saved = {path.name: path.read_bytes() for path in folder.iterdir()}
    assert saved == {
        "private_key-privkey.pem": before[target_host.private_key_path],
        "certificate-cert.pem": before[target_host.certificate_path],
        "ca_bundle-chain.pem": before[target_host.ca_bundle_path],
        "fullchain-fullchain.pem": before[target_host.fullchain_path],
    }
    assert mode_of(folder / "private_key-privkey.pem") == 0o600
    assert not [p for p in target_host.ssl_dir.iterdir() if ".portal-" in p.name]


@pytest.mark.django_db
def test_the_backup_is_the_old_file_itself_not_a_copy(host, target_host, version):
    old_inode = target_host.private_key_path.stat().st_ino

    assert install_now(version, host).ok

    [batch] = backups(target_host)
    [folder] = batch.iterdir()
    # A second name for the same file (hardlink@openssh.com): nothing was copied.
    assert (folder / "private_key-privkey.pem").stat().st_ino == old_inode
    assert target_host.private_key_path.stat().st_ino != old_inode


@pytest.mark.django_db
def test_a_backup_folder_on_another_file_system_gets_copies_and_still_rolls_back(
        host, target_host, certificate):
    elsewhere = tempfile.mkdtemp(prefix="portal-backups-", dir="/dev/shm")
    try:
        assert os.stat(elsewhere).st_dev != target_host.ssl_dir.stat().st_dev
        host.backup_dir = elsewhere
        host.save()
        before = live_files(target_host)
        # A key that does not belong to the leaf: nginx -t refuses, the old files come back.
        mismatched = new_version(certificate, target_host.sni_name,
                                 private_key_pem=factories.self_signed()[0])

        outcome = install_now(mismatched, host)

        assert outcome.status == ROLLED_BACK
        assert live_files(target_host) == before
        [batch] = [p for p in Path(elsewhere).iterdir()]
        [folder] = batch.iterdir()
        assert (folder / "private_key-privkey.pem").read_bytes() == before[
            target_host.private_key_path]
        assert mode_of(folder / "private_key-privkey.pem") == 0o600
    finally:
        shutil.rmtree(elsewhere)


@pytest.mark.django_db
def test_each_step_is_recorded_on_the_run_with_its_host(host, version):
    run = RenewalRun.objects.create(certificate=version.certificate,
                                    trigger=RenewalRun.Trigger.MANUAL)

    assert install_now(version, host, run=run).ok

    steps = list(run.steps.values_list("name", "status", "host"))
    assert steps == [(name, status, host.pk) for name, status in DEPLOY_STEPS]
    run.refresh_from_db()
    assert run.log == f"{host.name}: deployed\n"


@pytest.mark.django_db
def test_it_writes_files_with_the_configured_modes_and_group(host, target_host, version):
    host.key_mode, host.cert_mode, host.file_group = "0400", "0444", "daemon"
    host.save()

    assert install_now(version, host).ok

    assert mode_of(target_host.private_key_path) == 0o400
    assert mode_of(target_host.certificate_path) == 0o444
    assert target_host.private_key_path.stat().st_gid == grp.getgrnam("daemon").gr_gid


@pytest.mark.django_db
def test_it_keeps_only_the_newest_backups(host, target_host, version):
    host.backups_to_keep = 2
    host.save()
    for name in ("20200101T000000.000000Z", "20210101T000000.000000Z",
                 "20220101T000000.000000Z"):
        (target_host.backup_dir / name).mkdir()
        (target_host.backup_dir / name / "certificate-cert.pem").write_text("old")
    (target_host.backup_dir / "kept-by-a-person").mkdir()

    assert install_now(version, host).ok

    remaining = sorted(p.name for p in target_host.backup_dir.iterdir())
    assert remaining[0] == "20220101T000000.000000Z"
    assert remaining[1].startswith(str(timezone.now().year))
    assert remaining[2:] == ["kept-by-a-person"]


# -- deployments that do not take ---------------------------------------------------


@pytest.mark.django_db
def test_it_restores_the_old_files_when_the_config_test_fails(
        host, target_host, certificate, version):
    # A key that does not belong to the leaf: nginx -t refuses the pair.
    mismatched = new_version(certificate, target_host.sni_name,
                             private_key_pem=factories.self_signed()[0])
    before, served_before = live_files(target_host), target_host.served_leaf_sha256()
    run = RenewalRun.objects.create(certificate=certificate, trigger=RenewalRun.Trigger.MANUAL)

    outcome = install_now(mismatched, host, run=run)

    assert outcome.status == ROLLED_BACK and not outcome.transient
    assert outcome.error_kind == "CommandFailed"
    assert "key values mismatch" in outcome.error  # nginx's own words
    assert live_files(target_host) == before
    target_host.wait_for_served_leaf(served_before)
    steps = dict(run.steps.values_list("name", "status"))
    assert steps["config_test"] == "failed" and steps["rollback"] == "done"
    assert "reload" not in steps
    row = Deployment.objects.get(certificate=certificate, host=host)
    assert (row.last_status, row.last_version) == (ROLLED_BACK, None)
    assert "key values mismatch" in row.last_error


@pytest.mark.django_db
def test_a_broken_nginx_config_stops_the_deployment_before_the_reload(
        host, target_host, version):
    conf = target_host.nginx_conf.read_text()
    target_host.nginx_conf.write_text(conf + "\nthis is not a directive;\n")
    before, served_before = live_files(target_host), target_host.served_leaf_sha256()
    try:
        outcome = install_now(version, host)
    finally:
        target_host.nginx_conf.write_text(conf)

    assert outcome.status == ROLLED_BACK and not outcome.transient
    assert "test failed" in outcome.error
    assert live_files(target_host) == before
    target_host.wait_for_served_leaf(served_before)


@pytest.mark.django_db
def test_it_rolls_back_when_reload_does_not_take(host, target_host, version, fast_grace):
    host.reload_command = "true"  # exits 0 and changes nothing, like a reload gone wrong
    host.save()
    before, served_before = live_files(target_host), target_host.served_leaf_sha256()

    outcome = install_now(version, host)

    assert (outcome.status, outcome.error_kind, outcome.transient) == (
        ROLLED_BACK, "NotServed", False)
    assert served_before in outcome.error and version.fingerprint_sha256 in outcome.error
    assert outcome.served_fingerprint == served_before
    assert live_files(target_host) == before
    target_host.wait_for_served_leaf(served_before)
    row = Deployment.objects.get(certificate=version.certificate, host=host)
    assert (row.last_status, row.served, row.served_fingerprint) == (
        ROLLED_BACK, False, served_before)


@pytest.mark.django_db
def test_a_reload_that_fails_again_after_the_restore_still_ends_rolled_back(
        host, target_host, version):
    # Each reload fails and changes nothing: nginx never loaded the new files, so
    # with the old ones back it serves the previous leaf, as it did all along.
    host.reload_command = "echo 'reload refused' >&2; exit 1"
    host.save()
    before, served_before = live_files(target_host), target_host.served_leaf_sha256()
    run = RenewalRun.objects.create(certificate=version.certificate,
                                    trigger=RenewalRun.Trigger.MANUAL)

    outcome = install_now(version, host, run=run)

    assert (outcome.status, outcome.error_kind) == (ROLLED_BACK, "CommandFailed")
    assert "reload refused" in outcome.error
    assert "The previous files are back in place" in outcome.error
    assert f"serves the previous certificate ({served_before})" in outcome.error
    assert "rollback failed" not in outcome.error.lower()
    assert outcome.served_fingerprint == served_before
    assert live_files(target_host) == before
    target_host.wait_for_served_leaf(served_before)
    assert list(run.steps.filter(name="rollback").values_list("status", flat=True)) == [
        "started", "done"]
    row = Deployment.objects.get(certificate=version.certificate, host=host)
    assert (row.last_status, row.served, row.served_fingerprint) == (
        ROLLED_BACK, False, served_before)


@pytest.mark.django_db
def test_a_reload_that_fails_after_the_restore_with_the_new_leaf_served_needs_a_person(
        host, target_host, version):
    # The first reload loads the new files yet reports a failure; the one after
    # the restore fails without reloading, so nginx goes on serving the new leaf.
    once = target_host.backup_dir.parent / "reloaded-once"
    host.reload_command = (f"if [ -e {once} ]; then exit 1; fi; touch {once}; "
                           f"{target_host.reload_command}; sleep 1; exit 1")
    host.save()
    before = live_files(target_host)

    outcome = install_now(version, host)

    assert (outcome.status, outcome.error_kind) == (FAILED, "RollbackFailed")
    assert "The rollback failed: The previous files are back in place" in outcome.error
    assert "the reload after them failed" in outcome.error
    assert f"it serves {version.fingerprint_sha256}" in outcome.error
    assert live_files(target_host) == before  # on disk: only a reload is missing
    target_host.wait_for_served_leaf(version.fingerprint_sha256)


@pytest.mark.django_db
def test_a_rollback_that_cannot_put_a_file_back_says_which_did_and_which_did_not(
        host, target_host, version):
    # The config test takes the backup of the leaf away, then fails: the key, the
    # bundle and the full chain go back, the leaf cannot.
    host.config_test_command = f"rm -f {target_host.backup_dir}/*/*/certificate-*; exit 1"
    host.save()
    before = live_files(target_host)

    outcome = install_now(version, host)

    assert (outcome.status, outcome.error_kind) == (FAILED, "RollbackFailed")
    not_back, back = outcome.error.split("The rollback failed: ", 1)[1].split(" could not", 1)
    assert str(target_host.certificate_path) in not_back
    for path in (target_host.private_key_path, target_host.ca_bundle_path,
                 target_host.fullchain_path):
        assert str(path) not in not_back and str(path) in back
    assert target_host.certificate_path.read_text() == version.leaf_pem()
    assert {path: data for path, data in live_files(target_host).items()
            if path != target_host.certificate_path} == {
        path: data for path, data in before.items() if path != target_host.certificate_path}


@pytest.mark.django_db(transaction=True)
def test_a_long_config_test_shows_as_started_while_it_runs(host, target_host, version):
    running, go = (target_host.backup_dir.parent / name for name in ("running", "go"))
    host.config_test_command = (f"touch {running}; while [ ! -e {go} ]; do sleep 0.05; done; "
                                f"{target_host.config_test_command}")
    host.save()
    run = RenewalRun.objects.create(certificate=version.certificate,
                                    trigger=RenewalRun.Trigger.MANUAL)
    outcomes = []
    deploying = closing_thread(
        lambda: outcomes.append(install_now(version, host, run=run)))
    deploying.start()
    try:
        deadline = time.monotonic() + 30
        while not running.exists():
            assert time.monotonic() < deadline, "the config test did not start"
            time.sleep(0.05)

        # Written at once, not held until the command is done.
        assert list(run.steps.values_list("name", "status")) == DEPLOY_STEPS[:5]
    finally:
        go.touch()
        deploying.join(timeout=60)
    assert outcomes[0].ok, outcomes[0].error


@pytest.mark.django_db
def test_a_tls_port_that_never_answers_rolls_back_as_a_transient_error(
        host, target_host, version, fast_grace):
    host.tls_check_port = target_host.ssh_port + 1 if target_host.ssh_port < 65535 else 1
    host.save()
    before = live_files(target_host)

    outcome = install_now(version, host)

    assert outcome.status == ROLLED_BACK and outcome.transient
    assert "No TLS handshake" in outcome.error
    assert live_files(target_host) == before


@pytest.mark.django_db
def test_a_changed_host_key_refuses_the_deployment_and_writes_nothing(
        host, target_host, version):
    pinned = target_host.host_key_fingerprint
    presented = target_host.replace_host_key()
    before = files_on(target_host)

    outcome = install_now(version, host)

    assert (outcome.status, outcome.error_kind, outcome.transient) == (
        FAILED, "HostKeyMismatch", False)
    assert pinned in outcome.error and presented in outcome.error
    assert files_on(target_host) == before


@pytest.mark.django_db
def test_a_host_whose_key_is_not_confirmed_receives_nothing(
        organization, target_host, version):
    unconfirmed = portal_host(organization, target_host, confirmed=False)
    before = files_on(target_host)

    outcome = install_now(version, unconfirmed)

    assert outcome.status == FAILED and not outcome.transient
    assert files_on(target_host) == before


@pytest.mark.django_db
def test_an_sshd_that_is_down_gives_a_transient_error(host, target_host, version):
    target_host.stop_sshd()

    outcome = install_now(version, host)

    assert (outcome.status, outcome.error_kind, outcome.transient) == (
        FAILED, "Unreachable", True)
    assert target_host.address in outcome.error
    host.refresh_from_db()
    assert (host.deploy_lock_owner, host.deploy_locked_until) == ("", None)  # released


# -- many hosts, and one host at a time -------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_three_hosts_at_once_with_one_down_the_two_others_succeed(
        organization, ca, target_host_factory):
    testbeds = [target_host_factory() for _ in range(3)]
    try:
        hosts = [portal_host(organization, testbed) for testbed in testbeds]
        certificate = factories.certificate(organization, ca, common_name="www.example.test",
                                            sans=["www.example.test"])
        for host in hosts:
            Deployment.objects.create(certificate=certificate, host=host)
        version = new_version(certificate, "www.example.test")
        make_current(certificate, version)
        testbeds[1].stop_sshd()

        run = renewal.deploy_inline(certificate_id=certificate.pk)

        assert run.status == RenewalRun.Status.FAILED and run.failure_kind == "DeploymentFailed"
        assert run.error_class == "transient"  # the one host down is a transient failure
        assert hosts[1].name in run.error and hosts[0].name not in run.error
        for testbed in (testbeds[0], testbeds[2]):
            testbed.wait_for_served_leaf(version.fingerprint_sha256)
        statuses = dict(Deployment.objects.values_list("host__name", "last_status"))
        assert statuses == {hosts[0].name: DEPLOYED, hosts[1].name: FAILED,
                            hosts[2].name: DEPLOYED}
        failed_steps = run.steps.filter(status="failed")
        assert list(failed_steps.values_list("name", "host")) == [("connect", hosts[1].pk)]
        assert run.steps.filter(host=hosts[0], name="tls_check", status="done").exists()
    finally:
        for testbed in testbeds:
            testbed.stop()


# -- several certificates on one host: queued, then installed together -------------

SITES = ["a.example.test", "b.example.test", "c.example.test"]


@pytest.fixture
def shared_host(organization, target_host):
    """The testbed host serving SITES, each from files of its own ({name} paths),
    its reloads counted in a file beside it."""
    target_host.serve_sites(SITES)
    reloads = target_host.backup_dir.parent / "reloads"
    reloads.write_text("")
    host = portal_host(
        organization, target_host, tls_sni_name="",  # each certificate's own name
        private_key_path=target_host.site_path("privkey.pem"),
        certificate_path=target_host.site_path("cert.pem"),
        ca_bundle_path=target_host.site_path("chain.pem"),
        fullchain_path=target_host.site_path("fullchain.pem"),
        reload_command=f"echo reload >> {reloads} && {target_host.reload_command}")
    host.reloads = lambda: len(reloads.read_text().splitlines())
    return host


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


@pytest.mark.django_db(transaction=True)
def test_certificates_queued_for_one_host_are_installed_in_one_session_with_one_reload(
        organization, ca, shared_host, target_host):
    runs, versions = site_certificates(organization, ca, shared_host, SITES)

    outcomes = queue_and_release(shared_host, runs)

    assert {pk: o.status for pk, o in outcomes.items()} == dict.fromkeys(versions, DEPLOYED)
    for pk, version in versions.items():
        assert outcomes[pk].served_fingerprint == version.fingerprint_sha256
        target_host.wait_for_served_leaf(version.fingerprint_sha256,
                                         name=version.certificate.common_name)
    assert shared_host.reloads() == 1
    [batch] = backups(target_host)
    assert sorted(p.name for p in batch.iterdir()) == sorted(
        f"{v.certificate.common_name}-{v.certificate.pk}" for v in versions.values())
    for run in runs:
        assert list(run.steps.values_list("name", "status")) == DEPLOY_STEPS
        run.refresh_from_db()
        assert run.log == f"{shared_host.name}: deployed\n"
    assert not DeployRequest.objects.filter(finished_at__isnull=True).exists()  # all answered
    for run in runs:
        assert conclude(run).status == RenewalRun.Status.SUCCEEDED, run.error
    assert not DeployRequest.objects.exists()  # a concluded run's requests are gone
    assert set(Deployment.objects.values_list("last_status", "served")) == {(DEPLOYED, True)}
    shared_host.refresh_from_db()
    assert shared_host.deploy_lock_owner == ""


@pytest.mark.django_db
def test_a_batch_writes_each_phases_steps_together_not_one_insert_per_certificate(
        organization, ca, shared_host):
    runs, versions = site_certificates(organization, ca, shared_host, SITES)
    for run in runs:
        DeployRequest.objects.create(
            host=shared_host, version=versions[run.certificate_id], run=run,
            deployment=Deployment.objects.get(certificate_id=run.certificate_id))
    TargetHost.objects.filter(pk=shared_host.pk).update(
        deploy_lock_owner="me", deploy_locked_until=timezone.now() + timedelta(minutes=5))

    with CaptureQueriesContext(connection) as queries:
        tried, _runs = deployment.install_queued(shared_host, owner="me")

    assert tried == len(SITES)
    inserts = [q for q in queries.captured_queries
               if q["sql"].startswith('INSERT INTO "certificates_renewalstep"')]
    phases = ["connect", "backup", "upload", "install", "config_test", "reload", "tls_check",
              "cleanup"]
    # One per phase at most (a phase slower than STEP_HOLD_SECONDS may split one; a
    # phase that may take long is written as it starts, with the one before it);
    # one per certificate and step would be 33.
    assert len(inserts) <= len(phases) + 2, [q["sql"][:80] for q in inserts]
    for run in runs:
        steps = list(run.steps.order_by("at", "pk"))
        assert [(s.name, s.status) for s in steps] == DEPLOY_STEPS
        assert [s.at for s in steps] == sorted(s.at for s in steps)


@pytest.mark.django_db(transaction=True)
def test_a_certificate_that_breaks_the_config_test_does_not_hold_back_the_others(
        organization, ca, shared_host, target_host):
    bad = "b.example.test"
    before = (target_host.ssl_dir / "sites" / bad / "privkey.pem").read_bytes()
    served_before = target_host.served_leaf_sha256(bad)
    # A key that does not belong to the leaf: nginx -t refuses the pair.
    runs, versions = site_certificates(
        organization, ca, shared_host, SITES,
        **{bad: {"private_key_pem": factories.self_signed()[0]}})

    outcomes = queue_and_release(shared_host, runs)

    by_name = {versions[pk].certificate.common_name: o for pk, o in outcomes.items()}
    assert by_name[bad].status == ROLLED_BACK and not by_name[bad].transient
    assert "key values mismatch" in by_name[bad].error  # nginx's own words
    assert (target_host.ssl_dir / "sites" / bad / "privkey.pem").read_bytes() == before
    target_host.wait_for_served_leaf(served_before, name=bad)
    for pk, version in versions.items():
        name = version.certificate.common_name
        if name != bad:
            assert outcomes[pk].ok, outcomes[pk].error
            target_host.wait_for_served_leaf(version.fingerprint_sha256, name=name)
    # Together: the config test failed, so no reload; then each alone, one reload
    # for each good one.
    assert shared_host.reloads() == 2
    for run in runs:
        assert run.steps.filter(name="retry", status="started").exists()


@pytest.mark.django_db(transaction=True)
def test_a_certificate_the_server_does_not_serve_is_rolled_back_alone(
        organization, ca, shared_host, target_host, fast_grace):
    # Files of its own, but no server block: nginx answers its name with another leaf.
    stray = "d.example.test"
    (target_host.ssl_dir / "sites" / stray).mkdir()
    runs, versions = site_certificates(organization, ca, shared_host, [*SITES, stray])

    outcomes = queue_and_release(shared_host, runs)

    by_name = {versions[pk].certificate.common_name: o for pk, o in outcomes.items()}
    assert (by_name[stray].status, by_name[stray].error_kind) == (ROLLED_BACK, "NotServed")
    assert list((target_host.ssl_dir / "sites" / stray).iterdir()) == []  # new files gone
    for name in SITES:
        assert by_name[name].ok, by_name[name].error
    for version in versions.values():
        if version.certificate.common_name in SITES:
            target_host.wait_for_served_leaf(version.fingerprint_sha256,
                                             name=version.certificate.common_name)
    assert shared_host.reloads() == 2  # the batch's, and the rollback's


@pytest.mark.django_db(transaction=True)
def test_a_request_for_an_older_version_is_answered_with_the_newer_one_deployed(
        organization, ca, shared_host, target_host):
    name = SITES[0]
    certificate = factories.certificate(organization, ca, common_name=name, sans=[name])
    row = Deployment.objects.create(certificate=certificate, host=shared_host)
    older, newer = new_version(certificate, name), new_version(certificate, name)
    make_current(certificate, newer)
    for version in (newer, older):
        DeployRequest.objects.create(host=shared_host, deployment=row, version=version)
    assert leases.take(shared_host, "this-test")
    try:
        assert deployment.install_queued(shared_host, owner="this-test") == (2, set())
    finally:
        leases.release(shared_host, "this-test")

    answered = {r.version_id: r for r in DeployRequest.objects.all()}
    assert (answered[newer.pk].status, answered[older.pk].status) == (DEPLOYED, FAILED)
    assert answered[older.pk].error_kind == "Superseded"
    assert newer.serial in answered[older.pk].error
    target_host.wait_for_served_leaf(newer.fingerprint_sha256, name=name)
    row.refresh_from_db()
    assert row.last_version == newer
    assert shared_host.reloads() == 1
    assert all(r.finished_at for r in answered.values())


# -- a run's deployment, queued: nobody waits for a busy host ------------------------


def hold(host, owner="another-worker"):
    TargetHost.objects.filter(pk=host.pk).update(
        deploy_lock_owner=owner, deploy_locked_until=timezone.now() + timedelta(minutes=5))


def let_go(host):
    TargetHost.objects.filter(pk=host.pk).update(deploy_lock_owner="", deploy_locked_until=None)


@pytest.fixture
def conclusions(monkeypatch):
    """Conclusions enqueued by a drain run here, at once, instead of in a worker;
    each is listed with whether every host was free when it was enqueued."""
    from certificates import tasks

    enqueued = []

    def conclude_here(run_id):
        free = not TargetHost.objects.exclude(deploy_lock_owner="").exists()
        enqueued.append((run_id, free))
        renewal.conclude(run_id)

    monkeypatch.setattr(tasks.conclude_run, "delay", conclude_here)
    return enqueued


@pytest.mark.django_db(transaction=True)
def test_a_runs_deployment_to_a_busy_host_is_queued_and_concluded_by_whoever_drains_it(
        host, target_host, version, conclusions):
    Deployment.objects.create(certificate=version.certificate, host=host)
    hold(host)
    run = deploying_run(version.certificate)

    assert renewal.deploy(run_id=run.pk) is None  # returns at once: the host is busy

    run.refresh_from_db()
    assert run.status == RenewalRun.Status.DEPLOYING
    [queued] = DeployRequest.objects.all()
    assert (queued.run_id, queued.version_id, queued.finished_at) == (run.pk, version.pk, None)

    let_go(host)
    deployment.drain(host)  # what the holder does after its own batch

    run.refresh_from_db()
    assert run.status == RenewalRun.Status.SUCCEEDED, run.error
    assert conclusions == [(run.pk, True)]
    target_host.wait_for_served_leaf(version.fingerprint_sha256)
    assert not DeployRequest.objects.exists()
    assert run.steps.filter(name="tls_check", status="done", host=host).exists()


@pytest.mark.django_db(transaction=True)
def test_a_run_on_two_hosts_is_concluded_when_the_last_one_answers(
        organization, host, target_host, version, target_host_factory, fast_grace,
        conclusions, owner):
    owner.email = "owner@example.test"
    owner.save()
    other_testbed = target_host_factory()
    try:
        # A reload there changes nothing: the new leaf is never served, and the run fails.
        other = portal_host(organization, other_testbed, reload_command="true")
        for target in (host, other):
            Deployment.objects.create(certificate=version.certificate, host=target)
        hold(other)
        run = deploying_run(version.certificate)

        renewal.deploy(run_id=run.pk)

        run.refresh_from_db()
        assert run.status == RenewalRun.Status.DEPLOYING  # one host answered, one to go
        assert conclusions == []
        target_host.wait_for_served_leaf(version.fingerprint_sha256)

        let_go(other)
        deployment.drain(other)

        run.refresh_from_db()
        assert run.status == RenewalRun.Status.FAILED
        assert other.name in run.error and host.name not in run.error
        told = list(Notification.objects.filter(
            kind=Notification.Kind.NOT_SERVED,
            certificate=version.certificate).values_list("recipient", flat=True))
        assert told and len(told) == len(set(told))  # once to each person
        # The failure's mail went out from the conclusion, enqueued with every host free.
        assert conclusions == [(run.pk, True)]
        assert Notification.objects.filter(kind=Notification.Kind.RENEWAL_FAILED,
                                           certificate=version.certificate).exists()
        assert renewal.conclude(run.pk) is None  # concluded once
    finally:
        other_testbed.stop()


@pytest.mark.django_db(transaction=True)
def test_a_batch_waits_for_a_certificate_of_the_host_that_is_still_being_issued(
        organization, ca, shared_host, target_host, settings, conclusions):
    settings.DEPLOY_BATCH_LINGER_SECONDS = 30  # the issuance below ends long before
    runs, versions = site_certificates(organization, ca, shared_host, SITES[:2])
    issuing, ready = runs
    hold(shared_host)
    ready = deploying_run(run=ready)  # queued: the host is busy
    issuing = lifecycle.claim(issuing.pk)  # running: still being issued
    let_go(shared_host)

    drainer = closing_thread(deployment.drain, shared_host)
    drainer.start()
    time.sleep(0.5)  # the first one waits: the second is still being issued
    assert not run_steps(ready, "reload")
    assert lifecycle.to_deploying(issuing, deployment.requests_for(
        issuing, issuing.certificate))  # issued: it joins the waiting batch
    drainer.join(timeout=60)

    for run in runs:
        run.refresh_from_db()
        assert run.status == RenewalRun.Status.SUCCEEDED, run.error
    assert shared_host.reloads() == 1


@pytest.mark.django_db(transaction=True)
def test_a_run_behind_a_host_queue_deeper_than_ten_minutes_finishes_without_a_requeue(
        host, target_host, version, conclusions):
    Deployment.objects.create(certificate=version.certificate, host=host)
    hold(host)  # an earlier batch on the host, still going
    run = deploying_run(version.certificate)
    long_ago = timezone.now() - timedelta(minutes=25)
    DeployRequest.objects.filter(run=run).update(requested_at=long_ago)
    RenewalRun.objects.filter(pk=run.pk).update(lease_until=long_ago)  # no step for a while

    assert renewal.recover_stale_runs() == []  # it waits its turn: not lost

    run.refresh_from_db()
    assert (run.status, run.attempts) == (RenewalRun.Status.DEPLOYING, 1)
    assert DeployRequest.objects.filter(run=run, finished_at__isnull=True).count() == 1
    let_go(host)
    deployment.drain(host)
    run.refresh_from_db()
    assert run.status == RenewalRun.Status.SUCCEEDED, run.error
    assert (run.attempts, conclusions) == (1, [(run.pk, True)])


def run_steps(run, name):
    return list(run.steps.filter(name=name))


@pytest.mark.django_db
def test_a_host_busy_with_another_deployment_keeps_the_request_for_its_holder(
        host, target_host, version):
    until = timezone.now() + timedelta(hours=1)
    TargetHost.objects.filter(pk=host.pk).update(deploy_lock_owner="another-worker",
                                                 deploy_locked_until=until)
    before = files_on(target_host)

    assert install_now(version, host) is None  # nobody waits: the holder installs it

    assert files_on(target_host) == before
    assert DeployRequest.objects.filter(host=host, finished_at__isnull=True).count() == 1
    host.refresh_from_db()
    assert host.deploy_lock_owner == "another-worker"  # not ours to release


@pytest.mark.django_db
def test_the_lease_of_a_dead_worker_runs_out(host, version):
    TargetHost.objects.filter(pk=host.pk).update(
        deploy_lock_owner="dead-worker", deploy_locked_until=timezone.now() - timedelta(1))

    assert install_now(version, host).ok


@pytest.mark.django_db
def test_a_certificate_without_a_version_has_nothing_to_deploy(certificate):
    with pytest.raises(NothingToDeploy):
        renewal.deploy_now(certificate_id=certificate.pk)


# -- manage.py deploy ----------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_manage_py_deploy_prints_each_step_and_deploys(host, target_host, version, capsys):
    Deployment.objects.create(certificate=version.certificate, host=host)

    call_command("deploy", version.certificate.common_name)

    out = capsys.readouterr().out
    for step in ("connect", "backup", "upload", "install", "config_test", "reload",
                 "tls_check", "cleanup"):
        assert f"{host.name}  {Step(step).label}: " in out  # in words
    target_host.wait_for_served_leaf(version.fingerprint_sha256)


@pytest.mark.django_db(transaction=True)
def test_manage_py_deploy_to_one_host_leaves_the_others_alone(
        organization, host, version, target_host_factory):
    other_testbed = target_host_factory()
    try:
        other = portal_host(organization, other_testbed)
        for target in (host, other):
            Deployment.objects.create(certificate=version.certificate, host=target)
        before = live_files(other_testbed)

        call_command("deploy", str(version.certificate.pk), "--host", host.name)

        assert live_files(other_testbed) == before
        statuses = dict(Deployment.objects.values_list("host", "last_status"))
        assert statuses == {host.pk: DEPLOYED, other.pk: Deployment.Status.PENDING}
    finally:
        other_testbed.stop()


@pytest.mark.django_db(transaction=True)
def test_manage_py_deploy_fails_when_a_host_does_not_take_the_certificate(
        host, target_host, version, capsys):
    Deployment.objects.create(certificate=version.certificate, host=host)
    target_host.stop_sshd()

    with pytest.raises(CommandError):
        call_command("deploy", version.certificate.common_name)

    assert f"{host.name}  {Step.CONNECT.label}: " in capsys.readouterr().out
