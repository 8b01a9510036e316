"""nginx: serves a host's HTTP-01 webroot and the TLS certificate deployed to it."""

import os
import shlex
from pathlib import Path

from . import certs
from .ports import port_open
from .tools import Daemon, require

_WORKERS = 1


def _children(pid: int) -> list[int]:
    """Pids whose parent is ``pid`` (from /proc, so no extra dependency)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()  # "pid (comm) state ppid"
        except OSError:  # the process just exited
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


class NginxServer:
    """One nginx master (``daemon off``, a child we can wait for) per host.

    Files: ``webroot``, ``ssl_dir`` with ``privkey.pem``, ``cert.pem``,
    ``chain.pem``, ``fullchain.pem`` (at first one self-signed certificate,
    which is also its own chain, since nginx cannot start its TLS server
    without one), and the config ``conf``.
    """

    def __init__(self, directory: Path, *, address: str, http_port: int, tls_port: int,
                 server_name: str):
        self.binary = require("nginx", "nginx-light")
        self.address, self.http_port, self.tls_port = address, http_port, tls_port
        self.webroot, self.ssl_dir = directory / "webroot", directory / "ssl"
        temp = directory / "nginx-temp"
        for folder in (self.webroot, self.ssl_dir, temp):
            folder.mkdir(parents=True, exist_ok=True)
        self.private_key_path = self.ssl_dir / "privkey.pem"
        self.certificate_path = self.ssl_dir / "cert.pem"
        self.ca_bundle_path = self.ssl_dir / "chain.pem"
        self.fullchain_path = self.ssl_dir / "fullchain.pem"
        key, cert = certs.self_signed(server_name)
        certs.write_private(self.private_key_path, certs.key_pem(key))
        for path in (self.certificate_path, self.ca_bundle_path, self.fullchain_path):
            path.write_text(certs.cert_pem(cert))
        self.conf = directory / "nginx.conf"
        log = directory / "nginx.log"
        # As root, workers would run as "nobody" and could not read pytest's
        # 0700 temp folders; as another user the directive is ignored anyway.
        user = "user root;" if os.geteuid() == 0 else ""
        # The compiled-in temp paths are under /var/lib/nginx: keep ours apart.
        temps = "\n".join(f"  {kind}_temp_path {temp}/{kind};"
                          for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
        self.conf.write_text(f"""\
daemon off;
{user}
worker_processes {_WORKERS};
pid {directory}/nginx.pid;
error_log {log} info;
events {{ worker_connections 64; }}
http {{
  access_log {directory}/access.log;
{temps}
  server {{  # HTTP-01: Pebble's validator connects to this port
    listen {address}:{http_port};
    server_name {server_name};
    root {self.webroot};
  }}
  server {{
    listen {address}:{tls_port} ssl;
    server_name {server_name};
    ssl_certificate {self.fullchain_path};
    ssl_certificate_key {self.private_key_path};
    root {self.webroot};
  }}
}}
""")
        conf = shlex.quote(str(self.conf))
        self.config_test_command = f"{self.binary} -c {conf} -t"
        self.reload_command = f"{self.binary} -c {conf} -s reload"
        self.daemon = Daemon(f"nginx {address}", [self.binary, "-c", str(self.conf)], log)

    def start(self) -> None:
        self.daemon.start()
        ports = (self.http_port, self.tls_port)
        self.daemon.wait_until(
            lambda: all(port_open(self.address, port) for port in ports),
            f"listening on {self.address} ports {ports}",
        )

    def stop(self) -> None:
        self.daemon.stop()

    def settled(self) -> bool:
        """True when no worker from before a reload can accept connections.

        After ``nginx -s reload`` the old workers keep accepting until the
        master, having started the new ones, tells them to quit; then their
        title says "shutting down". Until then a handshake may still get the
        old certificate, right after one that got the new.
        """
        if not self.daemon.running:
            return False
        titles = [_cmdline(pid) for pid in _children(self.daemon.proc.pid)]
        accepting = [t for t in titles if t.startswith(b"nginx: worker") and b"shutting" not in t]
        return len(accepting) == _WORKERS
