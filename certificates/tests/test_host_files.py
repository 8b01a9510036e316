"""On a target host the portal never follows a link it did not make: backups,
challenge paths, ownership changes. Against the testbed's real sshd + nginx."""

import os
import pwd
import stat

import pytest

from certificates.hosts import enrolment
from certificates.models import RenewalRun
from certificates.renewal.issuance import run_issuance
from certificates.seams import ssh
from certificates.tests.installing import install_now

from .factories import ca_account, http01_certificate, portal_host, version_for

pytestmark = pytest.mark.django_db

OLD_BACKUPS = ("20200101T000000.000000Z", "20210101T000000.000000Z",
               "20220101T000000.000000Z")


@pytest.fixture
def host(organization, target_host):
    return portal_host(organization, target_host)


@pytest.fixture
def version(organization, target_host):
    return version_for(organization, target_host.sni_name, current=True)


@pytest.fixture
def precious(tmp_path):
    """A folder outside the host's folders, with files that must survive."""
    folder = tmp_path / "precious"
    (folder / "inner").mkdir(parents=True)
    (folder / "data.txt").write_text("keep me")
    (folder / "inner" / "more.txt").write_text("keep me too")
    return folder


def contents(folder):
    return {str(p.relative_to(folder)): p.read_bytes()
            for p in sorted(folder.rglob("*")) if p.is_file()}


# -- pruning backups --------------------------------------------------------------


def test_pruning_removes_a_planted_link_and_leaves_the_files_it_points_to(
        host, target_host, version, precious):
    host.backups_to_keep = 1
    host.save()
    before = contents(precious)
    for name in OLD_BACKUPS:
        (target_host.backup_dir / name).mkdir()
        (target_host.backup_dir / name / "certificate-cert.pem").write_text("old")
    # Named like the oldest backup, so that it is first in line to be pruned.
    planted = target_host.backup_dir / "20190101T000000.000000Z"
    planted.symlink_to(precious, target_is_directory=True)
    # And one inside a backup folder that is pruned.
    (target_host.backup_dir / OLD_BACKUPS[0] / "sneaky").symlink_to(precious)

    outcome = install_now(version, host)

    assert outcome.ok, outcome.error
    assert contents(precious) == before
    assert not os.path.lexists(planted)
    assert not (target_host.backup_dir / OLD_BACKUPS[0]).exists()
    [kept] = [p for p in target_host.backup_dir.iterdir()]
    assert kept.is_dir() and not kept.is_symlink()


def test_pruning_leaves_what_is_not_a_backup_folder_of_the_portal(host, target_host, version,
                                                                     precious):
    host.backups_to_keep = 1
    host.save()
    (target_host.backup_dir / OLD_BACKUPS[0]).write_text("a file, not a folder")
    (target_host.backup_dir / "notes").symlink_to(precious, target_is_directory=True)
    run = RenewalRun.objects.create(certificate=version.certificate,
                                    trigger=RenewalRun.Trigger.MANUAL)

    assert install_now(version, host, run=run).ok

    assert run.steps.get(name="cleanup").status == "done"

    assert (target_host.backup_dir / OLD_BACKUPS[0]).read_text() == "a file, not a folder"
    assert (target_host.backup_dir / "notes").is_symlink()
    assert contents(precious) == {"data.txt": b"keep me", "inner/more.txt": b"keep me too"}


def test_a_backup_folder_that_is_a_link_is_refused_and_nothing_is_deployed(
        host, target_host, version, precious, tmp_path):
    host.backup_dir = str(tmp_path / "backup-link")
    host.save()
    os.symlink(precious, host.backup_dir)
    before = target_host.private_key_path.read_bytes()
    run = RenewalRun.objects.create(certificate=version.certificate,
                                    trigger=RenewalRun.Trigger.MANUAL)

    outcome = install_now(version, host, run=run)

    assert not outcome.ok
    assert not outcome.transient
    assert "symbolic link" in outcome.error and host.backup_dir in outcome.error
    assert target_host.private_key_path.read_bytes() == before
    assert contents(precious) == {"data.txt": b"keep me", "inner/more.txt": b"keep me too"}
    step = run.steps.get(name="backup")
    assert step.status == "failed" and "symbolic link" in step.detail


def test_a_backup_folder_others_may_write_to_is_refused(host, target_host, version):
    os.chmod(target_host.backup_dir, 0o777)
    before = target_host.private_key_path.read_bytes()

    outcome = install_now(version, host)

    assert not outcome.ok and not outcome.transient
    assert str(target_host.backup_dir) in outcome.error and "0777" in outcome.error
    assert target_host.private_key_path.read_bytes() == before
    assert list(target_host.backup_dir.iterdir()) == []


def test_a_group_writable_backup_folder_is_refused(host, target_host, version):
    os.chmod(target_host.backup_dir, 0o770)

    outcome = install_now(version, host)

    assert not outcome.ok and "0770" in outcome.error


def test_the_connection_test_reports_a_backup_folder_others_may_write_to(host, target_host):
    os.chmod(target_host.backup_dir, 0o777)

    checks = {check.name: check for check in enrolment.test_connection(host_id=host.pk)}

    assert not checks["folder:backup_dir"].ok
    assert "0777" in checks["folder:backup_dir"].detail
    assert checks["folder:document_root"].ok


# -- the HTTP-01 challenge path -------------------------------------------------------


@pytest.fixture
def pebble_ca(organization, pebble, settings):
    """A CA account at the testbed's Pebble, whose TLS certificate the portal trusts."""
    settings.ACME_CA_BUNDLE = str(pebble.ca_bundle)
    return ca_account(organization, directory_url=pebble.directory_url)


@pytest.mark.parametrize("planted", [".well-known", ".well-known/acme-challenge"])
def test_a_linked_challenge_folder_is_refused_and_nothing_is_written_through_it(
        organization, pebble_ca, target_host, host, precious, planted):
    link = target_host.webroot / planted
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(precious, target_is_directory=True)
    before = contents(precious)
    certificate = http01_certificate(organization, pebble_ca, host, [target_host.name])

    run = run_issuance(certificate_id=certificate.pk)

    assert run.status == RenewalRun.Status.FAILED
    assert run.error_class == "permanent"
    assert "symbolic link" in run.error and str(link) in run.error
    assert contents(precious) == before
    assert link.is_symlink()


def test_missing_challenge_folders_are_created_and_issuance_succeeds(
        organization, pebble_ca, target_host, host):
    certificate = http01_certificate(organization, pebble_ca, host, [target_host.name])

    run = run_issuance(certificate_id=certificate.pk)

    assert run.status == RenewalRun.Status.SUCCEEDED, run.error
    folder = target_host.webroot / ".well-known" / "acme-challenge"
    assert folder.is_dir() and not folder.is_symlink()


# -- ownership changes -----------------------------------------------------------------


def test_chown_changes_a_link_itself_not_what_it_points_to(host, tmp_path):
    target = tmp_path / "elsewhere.txt"
    target.write_text("not the portal's")
    link = tmp_path / "site.crt"
    link.symlink_to(target)
    daemon = pwd.getpwnam("daemon").pw_uid

    with ssh.connect(host) as session:
        session.chown(str(link), owner="daemon")

    assert target.stat().st_uid == 0
    assert link.lstat().st_uid == daemon
    assert stat.S_ISLNK(link.lstat().st_mode)


# -- writing files -----------------------------------------------------------------------


def test_a_link_planted_at_a_fresh_name_is_not_written_through(host, tmp_path):
    target = tmp_path / "elsewhere.txt"
    target.write_text("not the portal's")
    planted = tmp_path / ".site.key.portal-000000000000.tmp"
    planted.symlink_to(target)

    with ssh.connect(host) as session, pytest.raises(ssh.RemoteFileError):
        session.write_file(str(planted), b"secret", mode=0o600, fresh=True)

    assert target.read_text() == "not the portal's"


def test_a_link_in_place_of_a_file_is_replaced_not_written_through(host, tmp_path):
    target = tmp_path / "elsewhere.txt"
    target.write_text("not the portal's")
    os.chmod(target, 0o644)
    link = tmp_path / "site.crt"
    link.symlink_to(target)

    with ssh.connect(host) as session:
        session.write_file(str(link), b"certificate", mode=0o640, owner="root",
                           group="daemon")

    assert target.read_text() == "not the portal's"
    assert stat.S_IMODE(target.stat().st_mode) == 0o644
    assert not link.is_symlink() and link.read_bytes() == b"certificate"
