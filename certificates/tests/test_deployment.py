"""Deploying to one real host (sshd + nginx of the testbed), proven by TLS
handshakes: what takes, what is rolled back, what is refused."""

import grp
import os
import shutil
import tempfile
from pathlib import Path

import pytest
from django.utils import timezone, translation

from certificates.models import (
    Deployment,
    RenewalRun,
)

from . import factories
from .factories import new_version, portal_host
from .installing import (
    DEPLOY_STEPS,
    DEPLOYED,
    FAILED,
    ROLLED_BACK,
    backups,
    closing_thread,
    files_on,
    install_now,
    live_files,
    mode_of,
)
from .waiting import wait_for

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
    # Stored as a message, read in the reader's language; nginx's words are its parameter.
    assert row.last_error_key == "install.config_test_failed"
    assert "key values mismatch" in row.last_error_params["output"]
    with translation.override("ja"):
        assert "設定テスト" in str(row.last_error_message)


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
        wait_for(running.exists, 30, "the config test starting", every=0.05)

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
