"""One SSH session with a host: its files over SFTP (never following a link
where a file is written) and its commands, with bounded output and time."""

from __future__ import annotations

import posixpath
import secrets
import shlex
import stat
import time
from collections.abc import Iterator
from contextlib import contextmanager
from types import TracebackType
from typing import NamedTuple, Protocol

import paramiko
from django.conf import settings
from paramiko.sftp import (
    CMD_EXTENDED,
    CMD_HANDLE,
    CMD_OPEN,
    SFTP_FLAG_CREATE,
    SFTP_FLAG_EXCL,
    SFTP_FLAG_WRITE,
)

from certificates.messages import message
from certificates.seams.ssh_errors import (
    OUTPUT_LIMIT,
    CommandFailed,
    CommandTimedOut,
    RemoteFileError,
    Unreachable,
    UnsafePath,
    describe,
    trim,
)


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


class SFTPClient(paramiko.SFTPClient):
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
                 sftp: SFTPClient | None = None) -> None:
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

    def detach_sftp(self) -> SFTPClient | None:
        sftp, self._sftp = self._sftp, None
        return sftp

    @property
    def sftp(self) -> SFTPClient:
        if self._sftp is None:
            with self._file_errors(message("ssh.do.open_sftp"), self.host.address):
                transport = self._client.get_transport()
                if transport is None or not transport.is_active():
                    raise paramiko.SSHException("the connection is closed")
                self._sftp = SFTPClient.from_transport(transport)
                self._sftp.get_channel().settimeout(settings.SSH_COMMAND_TIMEOUT)
        return self._sftp

    @contextmanager
    def _file_errors(self, action: object, path: str) -> Iterator[None]:
        try:
            yield
        except (TimeoutError, EOFError, paramiko.SSHException) as exc:
            raise Unreachable(
                message("ssh.broke_off", host=self.host.name, action=action, path=path,
                        error=describe(exc))
            ) from exc
        except OSError as exc:
            raise RemoteFileError(
                message("ssh.file_error", action=action, path=path, host=self.host.name,
                        error=exc.strerror or exc)
            ) from exc

    # -- files ------------------------------------------------------------

    def stat(self, path: str) -> paramiko.SFTPAttributes | None:
        """The file's attributes, or None if nothing is there."""
        with self._file_errors(message("ssh.do.inspect"), path):
            try:
                return self.sftp.stat(path)
            except FileNotFoundError:
                return None

    def lstat(self, path: str) -> paramiko.SFTPAttributes | None:
        """The attributes of ``path`` itself (a link is a link), or None."""
        with self._file_errors(message("ssh.do.inspect"), path):
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
        with self._file_errors(message("ssh.do.list"), path):
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
                with self._file_errors(message("ssh.do.create_folder"), folder):
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
                with self._file_errors(message("ssh.do.create_folder"), path):
                    self.sftp.mkdir(path, mode)
                continue
            self._refuse_link_or_file(path, attrs)
        return path

    def _refuse_link_or_file(self, path: str, attrs: paramiko.SFTPAttributes) -> None:
        if stat.S_ISLNK(attrs.st_mode):
            raise UnsafePath(
                message("ssh.symlink", path=path, host=self.host.name))
        if not stat.S_ISDIR(attrs.st_mode):
            raise UnsafePath(
                message("ssh.not_a_folder", path=path, host=self.host.name))

    def check_private_folder(self, path: str) -> paramiko.SFTPAttributes | None:
        """Refuse ``path`` if it is a link, not a folder, or writable by group or
        others (who could plant links in it); its attributes, or None if missing."""
        attrs = self.lstat(path)
        if attrs is None:
            return None
        self._refuse_link_or_file(path, attrs)
        if attrs.st_mode & 0o022:
            raise UnsafePath(
                message("ssh.writable", path=path, host=self.host.name,
                        mode=stat.S_IMODE(attrs.st_mode)))
        return attrs

    def read_file(self, path: str) -> bytes:
        with self._file_errors(message("ssh.do.read"), path), self.sftp.open(path, "rb") as remote:
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
        with (self._file_errors(message("ssh.do.write"), path),
              self.sftp.create_exclusive(path, 0o600) as remote):
            remote.write(data)
            if owner or group:
                self.chown(path, owner=owner, group=group)
            elif mode == 0o600:
                return  # created so
            with self._file_errors(message("ssh.do.chmod"), path):
                remote.chmod(mode)

    def hardlink(self, path: str, link: str) -> bool:
        """A second name ``link`` for the file at ``path`` (OpenSSH's
        hardlink@openssh.com): a backup without copying a byte. False if the
        server cannot (another SFTP server; another file system; ``link``
        exists), and the caller copies instead."""
        with self._file_errors(message("ssh.do.link"), link):
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
                message("ssh.chown_failed", path=path, host=self.host.name, spec=spec,
                        output=result.output),
                exit_status=result.exit_status, output=result.output,
            )

    def remove(self, path: str, *, missing_ok: bool = True) -> None:
        with self._file_errors(message("ssh.do.remove"), path):
            try:
                self.sftp.remove(path)
            except FileNotFoundError:
                if not missing_ok:
                    raise

    def rmdir(self, path: str) -> None:
        with self._file_errors(message("ssh.do.remove_folder"), path):
            self.sftp.rmdir(path)

    def rename(self, src: str, dst: str) -> None:
        """Move ``src`` over ``dst`` in one step: readers see the old file or the new."""
        with self._file_errors(message("ssh.do.move"), dst):
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
                message("ssh.command_timeout", command=command, host=self.host.name,
                        seconds=f"{timeout:g}")
            ) from None
        except (EOFError, OSError, paramiko.SSHException) as exc:
            raise Unreachable(
                message("ssh.broke_off_running", host=self.host.name, command=command,
                        error=describe(exc))
            ) from exc
        return CommandResult(status, trim(output.decode("utf-8", errors="replace")))

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
