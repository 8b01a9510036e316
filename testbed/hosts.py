"""Target hosts: an sshd plus an nginx on an address of the host's own.

Why 127.0.0.N per host: Pebble's HTTP-01 validator always connects to one
fixed port (``httpPort``), so two hosts can only both answer a challenge if
they listen on different addresses. BIND maps ``hN.example.test`` to
127.0.0.N, and Linux routes all of 127.0.0.0/8 to the loopback interface.
"""

import hashlib
import shlex
import socket
import ssl
import subprocess
import time
from pathlib import Path

import pytest

from . import certs
from .bind import HOST_NUMBERS, ZONE
from .nginx import NginxServer
from .ports import free_port
from .sshd import SshServer


class TargetHost:
    """A server the portal deploys to, named ``hN.example.test`` at 127.0.0.N.

    SSH: ``address``, ``ssh_port``, ``ssh_user``, ``client_key_path``,
    ``client_key_pem``, ``host_key_path``, ``host_public_key``,
    ``host_key_fingerprint``. nginx: ``webroot``, ``ssl_dir``,
    ``private_key_path``, ``certificate_path``, ``ca_bundle_path``,
    ``fullchain_path``, ``backup_dir``, ``nginx_conf``, ``config_test_command``,
    ``reload_command``, ``tls_port``, ``sni_name``. Methods: ``served_leaf_sha256()``,
    ``wait_for_served_leaf(sha256)``, ``stop_sshd()``, ``start_sshd()``,
    ``replace_host_key()``, ``stop()``.
    """

    ssh_user = "root"

    def __init__(self, directory: Path, number: int, http_port: int):
        self.number, self.address, self.name = number, f"127.0.0.{number}", f"h{number}.{ZONE}"
        self.sni_name = self.name
        self.sshd = SshServer(directory / "ssh", self.address)
        self.nginx = NginxServer(directory, address=self.address, http_port=http_port,
                                 tls_port=free_port(self.address), server_name=self.name)
        self.backup_dir = directory / "backup"
        self.backup_dir.mkdir()
        self.ssh_port = self.sshd.port
        self.host_key_path = self.sshd.host_key_path
        self.client_key_path = self.sshd.client_key_path
        self.client_key_pem = self.sshd.client_key_pem
        self.webroot = self.nginx.webroot
        self.ssl_dir = self.nginx.ssl_dir
        self.private_key_path = self.nginx.private_key_path
        self.certificate_path = self.nginx.certificate_path
        self.ca_bundle_path = self.nginx.ca_bundle_path
        self.fullchain_path = self.nginx.fullchain_path
        self.nginx_conf = self.nginx.conf
        self.config_test_command = self.nginx.config_test_command
        self.reload_command = self.nginx.reload_command
        self.tls_port = self.nginx.tls_port
        self.stopped = False

    @property
    def host_public_key(self) -> str:
        """The ``ssh-ed25519 AAAA...`` line of the current host key."""
        return self.sshd.host_public_key

    @property
    def host_key_fingerprint(self) -> str:
        """``SHA256:...`` of the current host key, as ``ssh-keygen -lf`` shows it."""
        return self.sshd.host_key_fingerprint

    def start(self) -> None:
        self.sshd.start()
        self.nginx.start()

    def serve_sites(self, names: list[str]) -> None:
        """One more TLS server block per name, each with files of its own under
        ``ssl/sites/<name>/`` (a self-signed leaf at first), as on a host that
        carries several certificates; ``site_path(file)`` is the portal's
        ``{name}`` path to them. Call before ``start()``, or nginx is reloaded."""
        blocks = []
        for name in names:
            folder = self.ssl_dir / "sites" / name
            folder.mkdir(parents=True)
            key, cert = certs.self_signed(name)
            certs.write_private(folder / "privkey.pem", certs.key_pem(key))
            for file in ("cert.pem", "chain.pem", "fullchain.pem"):
                (folder / file).write_text(certs.cert_pem(cert))
            blocks.append(f"""\
  server {{
    listen {self.address}:{self.tls_port} ssl;
    server_name {name};
    ssl_certificate {folder}/fullchain.pem;
    ssl_certificate_key {folder}/privkey.pem;
  }}
""")
        conf = self.nginx_conf.read_text()
        head, _tail = conf.rstrip().rsplit("}", 1)
        self.nginx_conf.write_text(head + "".join(blocks) + "}\n")
        if self.nginx.daemon.running:
            subprocess.run(shlex.split(self.reload_command), check=True, capture_output=True)
            for name in names:  # until the new workers answer for every new name
                leaf = certs.leaf_sha256(self.ssl_dir / "sites" / name / "cert.pem")
                self.wait_for_served_leaf(leaf, name=name)

    def site_path(self, file: str) -> str:
        """``ssl/sites/{name}/<file>``: a file of ``serve_sites``, for the portal."""
        return str(self.ssl_dir / "sites" / "{name}" / file)

    def served_leaf_sha256(self, name: str | None = None) -> str:
        """Hex SHA-256 of the leaf certificate nginx serves for ``name``
        (default ``sni_name``)."""
        # Look, don't verify (a self-signed leaf is a valid answer here); and no
        # CA store to load, which would make each call ten times slower.
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
        with (
            socket.create_connection((self.address, self.tls_port), timeout=5) as raw,
            context.wrap_socket(raw, server_hostname=name or self.sni_name) as tls,
        ):
            return hashlib.sha256(tls.getpeercert(binary_form=True)).hexdigest()

    def wait_for_served_leaf(self, sha256: str, timeout: float = 10,
                             name: str | None = None) -> None:
        """Wait until nginx serves (and will keep serving) the leaf ``sha256``
        for ``name`` (default ``sni_name``).

        For after a reload: see ``NginxServer.settled`` for the race it waits out.
        """
        deadline = time.monotonic() + timeout
        while True:
            served = self.served_leaf_sha256(name)
            # Settled *after* the new leaf was seen: no old worker is left to
            # answer a later handshake with the old one.
            if served == sha256 and self.nginx.settled():
                return
            if time.monotonic() > deadline:
                pytest.fail(f"{self.name} serves leaf {served} for {name or self.sni_name}, "
                            f"not {sha256}, after {timeout} s\n"
                            f"--- tail of {self.nginx.daemon.log} ---\n"
                            f"{self.nginx.daemon.log_tail()}", pytrace=False)
            time.sleep(0.05)

    def stop_sshd(self) -> None:
        self.sshd.stop()

    def start_sshd(self) -> None:
        self.sshd.start()

    def replace_host_key(self) -> str:
        """Give sshd a new host key and restart it; returns the new fingerprint."""
        self.sshd.stop()
        self.sshd.new_host_key()
        self.sshd.start()
        return self.host_key_fingerprint

    def stop(self) -> None:
        self.sshd.stop()
        self.nginx.stop()
        self.stopped = True


class TargetHostFactory:
    """``factory() -> TargetHost`` (started), numbered 2, 3, ... in turn.

    Once every number of the zone has been used, numbers of stopped hosts
    are reused; ``stop_all()`` ends every host at session end.
    """

    def __init__(self, tmp_path_factory: pytest.TempPathFactory, *, http_port: int):
        self._tmp, self.http_port = tmp_path_factory, http_port
        self._fresh = iter(HOST_NUMBERS)
        self.hosts: list[TargetHost] = []

    def _number(self) -> int:
        number = next(self._fresh, None)
        if number is not None:
            return number
        live = {host.number for host in self.hosts if not host.stopped}
        free = [n for n in HOST_NUMBERS if n not in live]
        if not free:
            pytest.fail(f"all {len(HOST_NUMBERS)} target host addresses are in use", pytrace=False)
        return free[0]

    def __call__(self) -> TargetHost:
        number = self._number()
        # "testbed" in the path lets `pgrep -af sshd.*testbed` find strays.
        host = TargetHost(self._tmp.mktemp(f"testbed-h{number}-"), number, self.http_port)
        self.hosts.append(host)  # before start: a failed start is still cleaned up
        host.start()
        return host

    def stop_all(self) -> None:
        for host in self.hosts:
            host.stop()
