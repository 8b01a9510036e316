"""The SSH seam against a real sshd: pinned host keys, files, commands, timeouts."""

import grp
import os
import socket
import stat
import threading
import time

import pytest

from certificates.seams import ssh, ssh_errors
from certificates.validators import ssh_fingerprint_sha256

from .factories import portal_host
from .pki import ssh_keypair

pytestmark = pytest.mark.django_db


@pytest.fixture
def host(organization, target_host):
    return portal_host(organization, target_host)


def mode_of(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_fetch_host_key_returns_the_key_the_server_presents(target_host):
    line = ssh.fetch_host_key(target_host.address, target_host.ssh_port)
    assert line.startswith("ssh-ed25519 AAAA")
    assert ssh_fingerprint_sha256(line) == target_host.host_key_fingerprint


def test_it_does_not_connect_to_a_host_whose_key_is_not_confirmed(organization, target_host):
    unconfirmed = portal_host(organization, target_host, host_key_confirmed_at=None)
    with pytest.raises(ssh.HostKeyNotConfirmed) as caught:
        with ssh.connect(unconfirmed):
            pass  # pragma: no cover
    assert caught.value.transient is False


def test_a_changed_host_key_is_refused_with_both_fingerprints(host, target_host):
    pinned = target_host.host_key_fingerprint
    presented = target_host.replace_host_key()
    with pytest.raises(ssh.HostKeyMismatch) as caught:
        with ssh.connect(host):
            pass  # pragma: no cover
    assert caught.value.transient is False
    assert pinned in str(caught.value) and presented in str(caught.value)
    assert (caught.value.pinned, caught.value.presented) == (pinned, presented)


def test_an_sshd_that_is_down_is_a_transient_error(host, target_host):
    target_host.stop_sshd()
    with pytest.raises(ssh.Unreachable) as caught:
        with ssh.connect(host):
            pass  # pragma: no cover
    assert caught.value.transient is True
    assert f"{target_host.address}:{target_host.ssh_port}" in str(caught.value)


def test_a_server_that_never_greets_times_out_as_a_transient_error(host):
    # A listener that accepts and stays silent: what a hung sshd looks like.
    silent = socket.create_server((host.address, 0))
    host.ssh_port = silent.getsockname()[1]
    started = time.monotonic()
    try:
        with pytest.raises(ssh.Unreachable) as caught:
            with ssh.connect(host, timeout=0.5):
                pass  # pragma: no cover
    finally:
        silent.close()
    assert caught.value.transient is True
    assert time.monotonic() - started < 5


def test_a_login_key_the_server_does_not_know_is_refused_permanently(host, tmp_path):
    host.login_key = ssh_keypair(tmp_path, "stranger")[0]
    with pytest.raises(ssh.AuthenticationFailed) as caught:
        with ssh.connect(host):
            pass  # pragma: no cover
    assert caught.value.transient is False


def test_run_returns_the_exit_status_and_both_outputs(host):
    with ssh.connect(host) as session:
        result = session.run("echo out; echo err >&2; exit 3")
    assert result.exit_status == 3 and not result.ok
    assert "out" in result.output and "err" in result.output


def test_a_command_that_outlives_its_timeout_is_a_transient_error(host):
    started = time.monotonic()
    with ssh.connect(host) as session:
        with pytest.raises(ssh.CommandTimedOut) as caught:
            session.run("sleep 10", timeout=0.5)
    assert caught.value.transient is True
    assert time.monotonic() - started < 5


def test_write_file_creates_a_file_with_its_owner_group_and_mode(host, tmp_path):
    path = tmp_path / "site.crt"
    with ssh.connect(host) as session:
        session.write_file(str(path), b"certificate", mode=0o640, owner="root", group="daemon")
    assert path.read_bytes() == b"certificate"
    assert mode_of(path) == 0o640
    assert path.stat().st_gid == grp.getgrnam("daemon").gr_gid


def test_a_written_file_stays_owner_only_until_its_owner_and_mode_are_set(host, tmp_path):
    # A chown that fails stops write_file after the content is written and
    # before the final chmod: what is on disk then is what the file was
    # created with. A file created with the server's default mode and
    # narrowed afterwards would show 0644 here.
    path = tmp_path / "site.key"
    with ssh.connect(host) as session:
        with pytest.raises(ssh.CommandFailed) as caught:
            session.write_file(str(path), b"secret", mode=0o644, owner="no-such-user")
    assert mode_of(path) == 0o600
    assert "no-such-user" in str(caught.value)


def test_write_file_replaces_a_looser_file_already_there(host, tmp_path):
    path = tmp_path / "site.key"
    path.write_text("old")
    os.chmod(path, 0o666)
    with ssh.connect(host) as session:
        session.write_file(str(path), b"new", mode=0o600)
    assert path.read_bytes() == b"new" and mode_of(path) == 0o600


def test_rename_moves_a_file_over_an_existing_one(host, tmp_path):
    # Plain SFTP RENAME refuses an existing target; posix-rename replaces it.
    (tmp_path / "new").write_text("new")
    (tmp_path / "live").write_text("old")
    with ssh.connect(host) as session:
        session.rename(str(tmp_path / "new"), str(tmp_path / "live"))
    assert (tmp_path / "live").read_text() == "new"
    assert not (tmp_path / "new").exists()


def test_makedirs_creates_every_missing_folder_with_the_mode(host, tmp_path):
    with ssh.connect(host) as session:
        session.makedirs(str(tmp_path / "a" / "b"), mode=0o700)
        assert session.is_dir(str(tmp_path / "a" / "b"))
    assert mode_of(tmp_path / "a") == 0o700 and mode_of(tmp_path / "a" / "b") == 0o700


def test_makedirs_accepts_a_folder_another_session_created_meanwhile(host, tmp_path,
                                                                     monkeypatch):
    folder = tmp_path / "webroot" / ".well-known"
    (tmp_path / "webroot").mkdir()
    with ssh.connect(host) as session:
        real_is_dir = session.is_dir
        looks = []

        def is_dir_then_a_rival_creates_it(path):
            looks.append(path)
            if len(looks) == 1:  # our first look: missing; a rival creates it right after
                folder.mkdir()
                return False
            return real_is_dir(path)

        monkeypatch.setattr(session, "is_dir", is_dir_then_a_rival_creates_it)
        session.makedirs(str(folder))
    assert folder.is_dir()


def test_remove_ignores_a_missing_file_unless_asked(host, tmp_path):
    with ssh.connect(host) as session:
        session.remove(str(tmp_path / "nothing"))
        with pytest.raises(ssh.RemoteFileError):
            session.remove(str(tmp_path / "nothing"), missing_ok=False)


def test_a_file_the_server_refuses_is_a_permanent_error(host, tmp_path):
    with ssh.connect(host) as session:
        with pytest.raises(ssh.RemoteFileError) as caught:
            session.write_file(str(tmp_path / "missing" / "file"), b"x")
    assert caught.value.transient is False
    assert str(tmp_path / "missing" / "file") in str(caught.value)


def test_sessions_to_one_host_work_side_by_side(host):
    # Deployments run in threads: each opens its own connection.
    outputs = []

    def run(word):
        with ssh.connect(host) as session:
            outputs.append(session.run(f"echo {word}").output)

    threads = [threading.Thread(target=run, args=(w,)) for w in ("one", "two", "three")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outputs) == ["one", "three", "two"]


def test_a_long_output_is_trimmed_to_its_end(host):
    with ssh.connect(host) as session:
        result = session.run("seq 1 200000")
    assert result.ok
    assert len(result.output) <= ssh_errors.OUTPUT_LIMIT + 1
    assert result.output.endswith("199999\n200000")


# -- kept logins ---------------------------------------------------------------------


def logins(testbed) -> int:
    """Logins sshd accepted so far (its log, LogLevel INFO)."""
    return testbed.sshd.daemon.log.read_text().count("Accepted publickey")


@pytest.mark.django_db
def test_a_login_is_kept_for_the_next_session_with_the_same_host(organization, target_host):
    host = portal_host(organization, target_host)
    before = logins(target_host)

    for _ in range(3):
        with ssh.connect(host) as session:
            assert session.exists(str(target_host.webroot))

    assert logins(target_host) - before == 1


@pytest.mark.django_db
def test_a_session_that_failed_does_not_leave_its_login_behind(organization, target_host):
    host = portal_host(organization, target_host)
    before = logins(target_host)

    with pytest.raises(ssh.RemoteFileError), ssh.connect(host) as session:
        session.read_file("/nonexistent/file")
    with ssh.connect(host) as session:
        session.exists("/")

    assert logins(target_host) - before == 2


@pytest.mark.django_db
def test_a_changed_host_record_logs_in_again_and_a_connection_test_always_does(
        organization, target_host, settings):
    host = portal_host(organization, target_host)
    before = logins(target_host)
    with ssh.connect(host) as session:
        session.exists("/")

    host.ssh_user = "root"  # unchanged: reused
    with ssh.connect(host) as session:
        session.exists("/")
    host.host_key = target_host.host_public_key + " "  # another record of the same key
    with ssh.connect(host) as session:
        session.exists("/")
    with ssh.connect(host, fresh=True) as session:
        session.exists("/")
    settings.SSH_KEEP_SECONDS = 0  # keeping turned off
    with ssh.connect(host) as session:
        session.exists("/")
    with ssh.connect(host) as session:
        session.exists("/")

    assert logins(target_host) - before == 5
