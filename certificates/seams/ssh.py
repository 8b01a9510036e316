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
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import paramiko
from django.conf import settings
from django.core.exceptions import ValidationError

from certificates import validators
from certificates.messages import message
from certificates.seams.ssh_errors import (
    AuthenticationFailed as AuthenticationFailed,
)
from certificates.seams.ssh_errors import CommandFailed as CommandFailed
from certificates.seams.ssh_errors import CommandTimedOut as CommandTimedOut
from certificates.seams.ssh_errors import HostKeyMismatch as HostKeyMismatch
from certificates.seams.ssh_errors import HostKeyNotConfirmed as HostKeyNotConfirmed
from certificates.seams.ssh_errors import OutboundRefused as OutboundRefused
from certificates.seams.ssh_errors import RemoteFileError as RemoteFileError
from certificates.seams.ssh_errors import SSHError as SSHError
from certificates.seams.ssh_errors import Unreachable as Unreachable
from certificates.seams.ssh_errors import UnsafePath as UnsafePath
from certificates.seams.ssh_errors import describe
from certificates.seams.ssh_session import CommandResult as CommandResult
from certificates.seams.ssh_session import Host as Host
from certificates.seams.ssh_session import Session as Session
from certificates.seams.ssh_session import SFTPClient
from fujissl_portal import egress

logger = logging.getLogger(__name__)

























def _connect_timeout(timeout: float | None) -> float:
    return settings.SSH_CONNECT_TIMEOUT if timeout is None else timeout




def _public_key(line: str) -> paramiko.PKey:
    key_type, encoded = validators.validate_ssh_public_key(line)
    return paramiko.PKey.from_type_string(key_type, base64.b64decode(encoded))


def _where(address: str, port: int) -> str:
    return f"{address}:{port}"






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
            message("ssh.outbound_refused", where=where)
        ) from exc
    except paramiko.ssh_exception.IncompatiblePeer as exc:
        raise SSHError(
            message("ssh.incompatible", where=where, error=exc)
        ) from exc
    except (OSError, paramiko.SSHException, EOFError) as exc:
        # The host may be back later.
        logger.info("SSH connection to %s failed: %s: %s", where, type(exc).__name__,
                    describe(exc))
        raise Unreachable(
            message("ssh.unreachable", where=where)
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
            message("ssh.key_not_confirmed", host=host.name)
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
            message("ssh.login_key_unusable", host=host.name, error=" ".join(exc.messages))
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
        self._idle: dict[PoolKey, list[tuple[float, paramiko.SSHClient, SFTPClient | None]]] = {}
        self._pid = os.getpid()

    def take(self, key: PoolKey) -> tuple[paramiko.SSHClient | None, SFTPClient | None]:
        """A kept login for ``key`` and its SFTP channel, or (None, None)."""
        stale = []
        found: tuple[paramiko.SSHClient | None, SFTPClient | None] = None, None
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
                  sftp: SFTPClient | None) -> None:
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
            message("ssh.login_refused", where=where, user=host.ssh_user, error=describe(exc))
        ) from None


def _mismatch(host: Host, exc: paramiko.BadHostKeyException) -> HostKeyMismatch:
    pinned = validators.ssh_fingerprint_sha256(host.host_key)
    presented = exc.key.fingerprint
    return HostKeyMismatch(
        message("ssh.host_key_changed", host=host.name, pinned=pinned, presented=presented),
        pinned=pinned, presented=presented,
    )




