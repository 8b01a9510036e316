"""The seam to target hosts: SSH and SFTP through paramiko, and nothing else.

Every error leaving this module is an ``SSHError`` sorted into transient
(retry later: the network, a timeout) or permanent (a person must act: a
changed host key, a refused login, a failing command). Host keys are pinned:
``connect`` trusts only the key stored on the TargetHost after an
administrator confirmed it, and paramiko's RejectPolicy refuses anything else.
Key material is never logged.
"""

from __future__ import annotations

import atexit
import base64
import hashlib
import logging
import os
import posixpath
import secrets
import shlex
import stat
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from types import TracebackType
from typing import NamedTuple, Protocol

import paramiko
from django.conf import settings
from django.core.exceptions import ValidationError
from django.utils.translation import gettext as _
from paramiko.sftp import (
    CMD_EXTENDED,
    CMD_HANDLE,
    CMD_OPEN,
    SFTP_FLAG_CREATE,
    SFTP_FLAG_EXCL,
    SFTP_FLAG_WRITE,
)

from fujissl_portal import egress

from . import validators
from .errors import FailureKind, PortalError

logger = logging.getLogger(__name__)

# Enough of a command's output to show a person what went wrong (nginx -t
# prints its verdict last), without storing a runaway log in a step's detail.
OUTPUT_LIMIT = 4000


class SSHError(PortalError):
    """Anything that went wrong on the way to or on a host; ``str()`` is for people."""

    kind = FailureKind.SSH_ERROR


class HostKeyNotConfirmed(SSHError):
    kind = FailureKind.HOST_KEY_NOT_CONFIRMED


class HostKeyMismatch(SSHError):
    kind = FailureKind.HOST_KEY_MISMATCH

    def __init__(self, message: str, *, pinned: str, presented: str) -> None:
        super().__init__(message)
        self.pinned, self.presented = pinned, presented


class Unreachable(SSHError):
    transient = True
    kind = FailureKind.UNREACHABLE


class AuthenticationFailed(SSHError):
    kind = FailureKind.AUTHENTICATION_FAILED


class CommandFailed(SSHError):
    kind = FailureKind.COMMAND_FAILED

    def __init__(self, message: str, *, exit_status: int, output: str) -> None:
        super().__init__(message)
        self.exit_status, self.output = exit_status, output


class CommandTimedOut(SSHError):
    transient = True
    kind = FailureKind.COMMAND_TIMED_OUT


class RemoteFileError(SSHError):
    """An SFTP operation the server refused (permission, missing folder...)."""

    kind = FailureKind.REMOTE_FILE_ERROR


class UnsafePath(RemoteFileError):
    """A path the portal refuses to write through: a symbolic link it did not
    make, or a folder that others may write to. A person must look at the host."""

    kind = FailureKind.UNSAFE_PATH


class Host(Protocol):
    """What this seam reads of a target host (a TargetHost row, which it does not import)."""

    @property
    def pk(self) -> int | None: ...
    @property
    def name(self) -> str: ...
    @property
    def address(self) -> str: ...
    @property
    def ssh_port(self) -> int: ...
    @property
    def ssh_user(self) -> str: ...
    @property
    def host_key(self) -> str: ...
    @property
    def login_key(self) -> str: ...
    @property
    def host_key_confirmed(self) -> bool: ...


class CommandResult(NamedTuple):
    exit_status: int
    output: str  # stdout and stderr interleaved, trimmed

    @property
    def ok(self) -> bool:
        return self.exit_status == 0


def _connect_timeout(timeout: float | None) -> float:
    return settings.SSH_CONNECT_TIMEOUT if timeout is None else timeout


def _trim(text: str) -> str:
    text = text.strip()
    return text if len(text) <= OUTPUT_LIMIT else "…" + text[-OUTPUT_LIMIT:]


def _public_key(line: str) -> paramiko.PKey:
    key_type, encoded = validators.validate_ssh_public_key(line)
    return paramiko.PKey.from_type_string(key_type, base64.b64decode(encoded))


def _where(address: str, port: int) -> str:
    return f"{address}:{port}"


def _describe(exc: BaseException) -> str:
    # paramiko raises some exceptions (EOFError, timeouts) without a message.
    return str(exc) or type(exc).__name__


class OutboundRefused(SSHError):
    """The address is not one the portal's outbound policy allows: a person must
    change it (or the operator the policy); retrying changes nothing."""

    kind = FailureKind.OUTBOUND_REFUSED


@contextmanager
def _network_errors(where: str) -> Iterator[None]:
    """Sort what socket and paramiko raise while connecting into our errors.

    Refused, timed out, no banner, dropped during key exchange: one message for
    people, so that an address and port cannot be probed through the portal by
    the difference; the log has the detail."""
    try:
        yield
    except (paramiko.BadHostKeyException, paramiko.AuthenticationException):
        raise  # the caller knows the host and says what they mean
    except egress.Refused as exc:
        raise OutboundRefused(
            _("%(where)s is not allowed by the portal's outbound policy: enter the host's "
              "public address.") % {"where": where}
        ) from exc
    except paramiko.ssh_exception.IncompatiblePeer as exc:
        raise SSHError(
            _("%(where)s offers no SSH algorithm the portal accepts: %(error)s")
            % {"where": where, "error": exc}
        ) from exc
    except (OSError, paramiko.SSHException, EOFError) as exc:
        # The host may be back later.
        logger.info("SSH connection to %s failed: %s: %s", where, type(exc).__name__,
                    _describe(exc))
        raise Unreachable(
            _("Could not reach %(where)s over SSH: check the address and port, and that the "
              "SSH server runs and accepts connections from the portal.") % {"where": where}
        ) from exc


def fetch_host_key(address: str, port: int, *, timeout: float | None = None) -> str:
    """The host key the server presents, as an ``ssh-ed25519 AAAA...`` line.

    For enrolment only: the key is shown to an administrator, who confirms its
    fingerprint before anything trusts it. No login is attempted.
    """
    timeout = _connect_timeout(timeout)
    where = _where(address, port)
    with _network_errors(where):
        sock = egress.connect(address, port, timeout=timeout)
        transport = paramiko.Transport(sock)
        try:
            transport.banner_timeout = timeout
            transport.start_client(timeout=timeout)
            key = transport.get_remote_server_key()
        finally:
            transport.close()
    return f"{key.get_name()} {key.get_base64()}"


def _client_for(host: Host) -> paramiko.SSHClient:
    """A client that trusts exactly the host's pinned key, and no other."""
    if not host.host_key_confirmed:
        raise HostKeyNotConfirmed(
            _("The SSH host key of %(host)s has not been confirmed by an administrator, "
              "so the portal does not connect to it; enrol the host and confirm its "
              "fingerprint first.") % {"host": host.name}
        )
    client = paramiko.SSHClient()
    # Not load_system_host_keys(): the portal's pin is the only source of trust.
    name = host.address if host.ssh_port == 22 else f"[{host.address}]:{host.ssh_port}"
    pinned = _public_key(host.host_key)
    client.get_host_keys().add(name, pinned.get_name(), pinned)
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    return client


def _login_key(host: Host) -> paramiko.PKey:
    try:
        return validators.validate_ssh_private_key(host.login_key)
    except ValidationError as exc:
        raise AuthenticationFailed(
            _("The SSH login key of %(host)s cannot be used: %(error)s")
            % {"host": host.name, "error": " ".join(exc.messages)}
        ) from None


@contextmanager
def connect(host: Host, *, timeout: float | None = None,
            fresh: bool = False) -> Iterator[Session]:
    """An authenticated session with ``host``, its host key checked against the pin.

    The login is kept for the next session with the same host in this process
    (see ``_Pool``), unless ``fresh``: a connection test must prove a new login.
    A session that ends in an error closes its connection instead.
    """
    key = _pool_key(host)
    client, sftp = (None, None) if fresh else _pool.take(key)
    if client is None:
        client = _client_for(host)
        try:
            _log_in(client, host, timeout=_connect_timeout(timeout))
        except BaseException:
            client.close()
            raise
    session = Session(client, host=host, sftp=sftp)
    try:
        yield session
    except BaseException:
        session.close()
        client.close()
        raise
    if fresh:
        session.close()
        client.close()
    else:
        _pool.give_back(key, client, session.detach_sftp())


# A kept login's key: see _pool_key.
PoolKey = tuple[int | None, str, int, str, str, str]


def _pool_key(host: Host) -> PoolKey:
    """What a kept login is good for: the same address, port and user, the same
    pinned key and the same login key. A changed record never reuses a login
    made under the old one."""
    return (host.pk, host.address, host.ssh_port, host.ssh_user, host.host_key,
            hashlib.sha256(host.login_key.encode()).hexdigest())


class _Pool:
    """Idle logins kept per host, per process, for SSH_KEEP_SECONDS.

    A renewal logs in to each host to place challenge files, then to deploy;
    with many certificates on a host, the logins were most of the host's CPU
    (OpenSSH forks and re-executes itself, then key exchange and authentication
    for each one). A kept login is only handed to one session at a time, and
    never across a fork.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._idle: dict[PoolKey, list[tuple[float, paramiko.SSHClient, _SFTPClient | None]]] = {}
        self._pid = os.getpid()

    def take(self, key: PoolKey) -> tuple[paramiko.SSHClient | None, _SFTPClient | None]:
        """A kept login for ``key`` and its SFTP channel, or (None, None)."""
        stale = []
        found: tuple[paramiko.SSHClient | None, _SFTPClient | None] = None, None
        with self._lock:
            self._after_fork()
            idle = self._idle.get(key, [])
            now = time.monotonic()
            while idle:
                since, client, sftp = idle.pop()
                transport = client.get_transport()
                if now - since < settings.SSH_KEEP_SECONDS and transport is not None \
                        and transport.is_active():
                    if sftp is not None and sftp.get_channel().closed:
                        sftp = None  # the next session opens a new one
                    found = client, sftp
                    break
                stale.append(client)
        for client in stale:
            client.close()
        return found

    def give_back(self, key: PoolKey, client: paramiko.SSHClient,
                  sftp: _SFTPClient | None) -> None:
        if settings.SSH_KEEP_SECONDS <= 0:
            client.close()
            return
        with self._lock:
            self._after_fork()
            idle = self._idle.setdefault(key, [])
            idle.append((time.monotonic(), client, sftp))
            surplus = idle[:-settings.SSH_KEEP_PER_HOST]
            del idle[:-settings.SSH_KEEP_PER_HOST]
        for _since, old, _sftp in surplus:
            old.close()

    def clear(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, {}
        for entries in idle.values():
            for _since, client, _sftp in entries:
                client.close()

    def _after_fork(self) -> None:
        # A child process must not talk through its parent's sockets.
        if os.getpid() != self._pid:
            self._idle, self._pid = {}, os.getpid()


_pool = _Pool()
atexit.register(_pool.clear)


def forget_kept_logins() -> None:
    """Close every kept login of this process (tests start each from none)."""
    _pool.clear()


def _log_in(client: paramiko.SSHClient, host: Host, *, timeout: float) -> None:
    where = _where(host.address, host.ssh_port)
    try:
        with _network_errors(where):
            sock = egress.connect(host.address, host.ssh_port, timeout=timeout)
            client.connect(
                host.address, port=host.ssh_port, sock=sock, username=host.ssh_user,
                pkey=_login_key(host), look_for_keys=False, allow_agent=False,
                timeout=timeout, banner_timeout=timeout, auth_timeout=timeout,
                channel_timeout=timeout,
            )
    except paramiko.BadHostKeyException as exc:
        raise _mismatch(host, exc) from None
    except paramiko.AuthenticationException as exc:
        raise AuthenticationFailed(
            _("%(where)s refused the login of %(user)s with the portal's key: %(error)s")
            % {"where": where, "user": host.ssh_user, "error": _describe(exc)}
        ) from None


def _mismatch(host: Host, exc: paramiko.BadHostKeyException) -> HostKeyMismatch:
    pinned = validators.ssh_fingerprint_sha256(host.host_key)
    presented = exc.key.fingerprint
    return HostKeyMismatch(
        _("The SSH host key of %(host)s has changed: the pinned key is %(pinned)s, but "
          "the server presented %(presented)s. Nothing was written. If the change is "
          "expected, enrol the host again and confirm the new fingerprint.")
        % {"host": host.name, "pinned": pinned, "presented": presented},
        pinned=pinned, presented=presented,
    )


class _SFTPClient(paramiko.SFTPClient):
    def create_exclusive(self, path: str, mode: int) -> paramiko.SFTPFile:
        """Open a new file for writing, created with ``mode`` (O_CREAT|O_EXCL).

        paramiko's open() sends no attributes, so the server creates the file
        with its default mode and a chmod afterwards would leave a window in
        which a secret is readable. The SFTP OPEN request carries the
        permissions itself and OpenSSH's sftp-server passes them to open(2).
        EXCL also refuses to write through a symlink planted at ``path``.
        """
        attrs = paramiko.SFTPAttributes()
        attrs.st_mode = mode
        flags = SFTP_FLAG_WRITE | SFTP_FLAG_CREATE | SFTP_FLAG_EXCL
        kind, message = self._request(CMD_OPEN, path.encode(), flags, attrs)
        if kind != CMD_HANDLE:
            raise paramiko.SFTPError("Expected handle")
        return paramiko.SFTPFile(self, message.get_binary(), "wb")


class Session:
    """File operations (SFTP) and commands (exec) on one connected host."""

    def __init__(self, client: paramiko.SSHClient, *, host: Host,
                 sftp: _SFTPClient | None = None) -> None:
        self.host = host
        self._client = client
        # A kept login keeps its SFTP channel too: each new one starts an
        # sftp-server process on the host.
        self._sftp = sftp

    def __enter__(self) -> Session:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        if self._sftp is not None:
            self._sftp.close()
            self._sftp = None

    def detach_sftp(self) -> _SFTPClient | None:
        sftp, self._sftp = self._sftp, None
        return sftp

    @property
    def sftp(self) -> _SFTPClient:
        if self._sftp is None:
            with self._file_errors(_("open SFTP on"), self.host.address):
                transport = self._client.get_transport()
                if transport is None or not transport.is_active():
                    raise paramiko.SSHException("the connection is closed")
                self._sftp = _SFTPClient.from_transport(transport)
                self._sftp.get_channel().settimeout(settings.SSH_COMMAND_TIMEOUT)
        return self._sftp

    @contextmanager
    def _file_errors(self, action: str, path: str) -> Iterator[None]:
        try:
            yield
        except (TimeoutError, EOFError, paramiko.SSHException) as exc:
            raise Unreachable(
                _("The SSH connection to %(host)s broke off while trying to %(action)s "
                  "%(path)s: %(error)s")
                % {"host": self.host.name, "action": action, "path": path,
                   "error": _describe(exc)}
            ) from exc
        except OSError as exc:
            raise RemoteFileError(
                _("Could not %(action)s %(path)s on %(host)s: %(error)s")
                % {"action": action, "path": path, "host": self.host.name,
                   "error": exc.strerror or exc}
            ) from exc

    # -- files ------------------------------------------------------------

    def stat(self, path: str) -> paramiko.SFTPAttributes | None:
        """The file's attributes, or None if nothing is there."""
        with self._file_errors(_("inspect"), path):
            try:
                return self.sftp.stat(path)
            except FileNotFoundError:
                return None

    def lstat(self, path: str) -> paramiko.SFTPAttributes | None:
        """The attributes of ``path`` itself (a link is a link), or None."""
        with self._file_errors(_("inspect"), path):
            try:
                return self.sftp.lstat(path)
            except FileNotFoundError:
                return None

    def exists(self, path: str) -> bool:
        return self.stat(path) is not None

    def is_dir(self, path: str) -> bool:
        attrs = self.stat(path)
        return attrs is not None and stat.S_ISDIR(attrs.st_mode)

    def listdir(self, path: str) -> list[str]:
        with self._file_errors(_("list"), path):
            return self.sftp.listdir(path)

    def makedirs(self, path: str, mode: int = 0o755) -> None:
        """Create ``path`` and any missing parents, each with ``mode``."""
        missing = []
        while path not in ("/", "") and not self.is_dir(path):
            missing.append(path)
            path = posixpath.dirname(path)
        for folder in reversed(missing):
            try:
                self.sftp.mkdir(folder, mode)
            except OSError:
                # Another session (a renewal of a second certificate on this host)
                # may have created it between our look and our mkdir: that is fine.
                if self.is_dir(folder):
                    continue
                with self._file_errors(_("create the folder"), folder):
                    self.sftp.mkdir(folder, mode)

    def makedirs_below(self, root: str, relative: str, mode: int = 0o755) -> str:
        """``root``/``relative``, creating each missing folder below ``root``.

        Whoever may write in ``root`` (a web application in its document root)
        could have planted a link there leading anywhere on the host; the portal
        writes as its SSH user, maybe root. So no folder below ``root`` may be a
        link: each is looked at itself (lstat), never through. ``root`` is the
        administrator's own setting and is taken as it is.
        """
        self.makedirs(root, mode)
        path = root
        for part in (p for p in relative.split("/") if p):
            path = posixpath.join(path, part)
            if self.lstat(path) is None:
                try:
                    self.sftp.mkdir(path, mode)
                except OSError:
                    pass  # made meanwhile by another session, or refused: lstat says
            attrs = self.lstat(path)
            if attrs is None:
                with self._file_errors(_("create the folder"), path):
                    self.sftp.mkdir(path, mode)
                continue
            self._refuse_link_or_file(path, attrs)
        return path

    def _refuse_link_or_file(self, path: str, attrs: paramiko.SFTPAttributes) -> None:
        if stat.S_ISLNK(attrs.st_mode):
            raise UnsafePath(
                _("%(path)s on %(host)s is a symbolic link, which the portal does not follow: "
                  "it did not make it, and it may lead out of the folder. Replace the link "
                  "with a real folder.") % {"path": path, "host": self.host.name})
        if not stat.S_ISDIR(attrs.st_mode):
            raise UnsafePath(
                _("%(path)s on %(host)s is not a folder; the portal needs a folder there.")
                % {"path": path, "host": self.host.name})

    def check_private_folder(self, path: str) -> paramiko.SFTPAttributes | None:
        """Refuse ``path`` if it is a link, not a folder, or writable by group or
        others (who could plant links in it); its attributes, or None if missing."""
        attrs = self.lstat(path)
        if attrs is None:
            return None
        self._refuse_link_or_file(path, attrs)
        if attrs.st_mode & 0o022:
            raise UnsafePath(
                _("%(path)s on %(host)s may be written by its group or by others (mode "
                  "%(mode)04o), who could plant links in it; allow writing by its owner only "
                  "(for example chmod 0700).")
                % {"path": path, "host": self.host.name, "mode": stat.S_IMODE(attrs.st_mode)})
        return attrs

    def read_file(self, path: str) -> bytes:
        with self._file_errors(_("read"), path), self.sftp.open(path, "rb") as remote:
            return remote.read()

    def write_file(self, path: str, data: bytes, *, mode: int = 0o644, owner: str = "",
                   group: str = "", fresh: bool = False) -> None:
        """Write ``data`` to ``path``, replacing a file already there (not atomically:
        write to a temporary name and ``rename()`` for that). ``fresh``: the name
        is new (a temporary name, a new folder), so there is nothing to remove
        first; if something is there after all, the write fails.

        The file is created readable by its owner only and gets ``owner``,
        ``group`` and then ``mode`` once its content is complete, so a key is
        never readable by anyone else, not even for an instant. The mode is set
        through the open file, not its name: a link swapped in for the file
        meanwhile does not pass the mode on to what it points to.
        """
        if not fresh:
            self.remove(path)  # O_EXCL below, and a stale file's looser mode must not stay
        with (self._file_errors(_("write"), path),
              self.sftp.create_exclusive(path, 0o600) as remote):
            remote.write(data)
            if owner or group:
                self.chown(path, owner=owner, group=group)
            elif mode == 0o600:
                return  # created so
            with self._file_errors(_("set the mode of"), path):
                remote.chmod(mode)

    def hardlink(self, path: str, link: str) -> bool:
        """A second name ``link`` for the file at ``path`` (OpenSSH's
        hardlink@openssh.com): a backup without copying a byte. False if the
        server cannot (another SFTP server; another file system; ``link``
        exists), and the caller copies instead."""
        with self._file_errors(_("link"), link):
            try:
                self.sftp._request(CMD_EXTENDED, "hardlink@openssh.com", path, link)
            except OSError:
                return False
        return True

    def chown(self, path: str, *, owner: str = "", group: str = "") -> None:
        # SFTP's SETSTAT takes numeric ids only; chown(1) resolves names on the host.
        # -h: a link put in place of the file gets the owner, not what it points to.
        spec = f"{owner}:{group}" if group else owner
        result = self.run(f"chown -h -- {shlex.quote(spec)} {shlex.quote(path)}")
        if not result.ok:
            raise CommandFailed(
                _("Could not give %(path)s on %(host)s the owner %(spec)s: %(output)s")
                % {"path": path, "host": self.host.name, "spec": spec, "output": result.output},
                exit_status=result.exit_status, output=result.output,
            )

    def remove(self, path: str, *, missing_ok: bool = True) -> None:
        with self._file_errors(_("remove"), path):
            try:
                self.sftp.remove(path)
            except FileNotFoundError:
                if not missing_ok:
                    raise

    def rmdir(self, path: str) -> None:
        with self._file_errors(_("remove the folder"), path):
            self.sftp.rmdir(path)

    def rename(self, src: str, dst: str) -> None:
        """Move ``src`` over ``dst`` in one step: readers see the old file or the new."""
        with self._file_errors(_("move into place"), dst):
            self.sftp.posix_rename(src, dst)

    def temporary_name(self, path: str) -> str:
        """A fresh name beside ``path`` (same folder, so same file system: rename is atomic)."""
        folder, name = posixpath.split(path)
        return posixpath.join(folder, f".{name}.portal-{secrets.token_hex(6)}.tmp")

    # -- commands ---------------------------------------------------------

    def run(self, command: str, *, timeout: float | None = None) -> CommandResult:
        """Run ``command`` through the login shell; output is stdout and stderr together."""
        timeout = settings.SSH_COMMAND_TIMEOUT if timeout is None else timeout
        deadline = time.monotonic() + timeout
        try:
            channel = self._client.get_transport().open_session(timeout=timeout)
            try:
                channel.set_combine_stderr(True)
                channel.exec_command(command)
                output = self._read_until_exit(channel, deadline)
                status = channel.recv_exit_status()  # already arrived: does not block
            finally:
                channel.close()
        except TimeoutError:
            raise CommandTimedOut(
                _("“%(command)s” on %(host)s did not finish within %(seconds)s seconds.")
                % {"command": command, "host": self.host.name, "seconds": f"{timeout:g}"}
            ) from None
        except (EOFError, OSError, paramiko.SSHException) as exc:
            raise Unreachable(
                _("The SSH connection to %(host)s broke off while running “%(command)s”: "
                  "%(error)s") % {"host": self.host.name, "command": command,
                                  "error": _describe(exc)}
            ) from exc
        return CommandResult(status, _trim(output.decode("utf-8", errors="replace")))

    @staticmethod
    def _read_until_exit(channel: paramiko.Channel, deadline: float) -> bytes:
        output = bytearray()
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError
            channel.settimeout(remaining)
            data = channel.recv(32768)  # raises TimeoutError when the deadline passes
            if not data:
                break
            # Only the tail is kept (see _trim): a chatty command cannot fill memory.
            output += data
            del output[:-4 * OUTPUT_LIMIT]
        # The exit status may follow the end of output by a moment.
        if not channel.status_event.wait(max(0.0, deadline - time.monotonic())):
            raise TimeoutError
        return bytes(output)
