"""What the agent's tests share: a real nginx (the testbed's), real openssl,
real files, and, as the one seam, a small HTTPS server on 127.0.0.1 that
answers as the portal's protocol says (docs/agent-protocol.md).

The agent is imported as ``fujissl_agent`` (from ``agent/``), as it is once
installed; ``run_agent`` runs it in this process, ``agent_process`` as a
process of its own."""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import ssl
import stat
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding

AGENT_DIR = Path(__file__).resolve().parents[1]
if str(AGENT_DIR) not in sys.path:
    sys.path.insert(0, str(AGENT_DIR))

from testbed import certs  # noqa: E402
from testbed.nginx import NginxServer  # noqa: E402

from fujissl_agent import cli, tlscheck  # noqa: E402
from fujissl_agent.state import StateDir  # noqa: E402

NAME = "www.example.test"


class FakePortal:
    """HTTPS on 127.0.0.1 with a certificate of ``ca``. ``answer(path, *replies)``
    scripts the replies to ``/agent/...<path>``: each a ``(status, body,
    headers)`` (body: a dict as JSON, or bytes) or a callable taking the
    request's JSON; the last one is repeated. ``requests`` records
    ``(method, path, headers, json-or-None)``, ``times`` when each came."""

    def __init__(self, directory: Path, ca_key, ca_cert, *, tls: bool = True) -> None:
        key, cert = certs.make_leaf(ca_key, ca_cert, ip_addresses=["127.0.0.1"])
        directory.mkdir(parents=True, exist_ok=True)
        self.cert_path, self.key_path = directory / "portal.pem", directory / "portal.key"
        self.cert_path.write_text(certs.cert_pem(cert))
        certs.write_private(self.key_path, certs.key_pem(key))
        self.ca_path = directory / "ca.pem"
        self.ca_path.write_text(certs.cert_pem(ca_cert))
        self.replies: dict[str, list] = {}
        self.requests: list[tuple[str, str, dict, object]] = []
        self.times: list[float] = []  # when each request came (time.monotonic)
        self.lock = threading.Lock()
        portal = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                portal._serve(self, None)

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                try:
                    body = json.loads(raw) if raw else None
                except ValueError:
                    body = raw
                portal._serve(self, body)

        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.cert_path, self.key_path)
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        if tls:
            self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.port = self.server.server_address[1]
        self.url = f"{'https' if tls else 'http'}://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,),
                                       daemon=True)
        self.thread.start()

    def answer(self, path: str, *replies) -> None:
        with self.lock:
            self.replies[path] = list(replies)

    def posted(self, path: str) -> list:
        """The JSON bodies POSTed to ``/agent/v1/<path>``."""
        return [body for method, where, _h, body in self.requests
                if method == "POST" and where == f"/agent/v1/{path}"]

    def _serve(self, handler: BaseHTTPRequestHandler, body) -> None:
        path = handler.path.split("?")[0]
        with self.lock:
            self.requests.append((handler.command, path, dict(handler.headers), body))
            self.times.append(time.monotonic())
            queue = self.replies.get(path.removeprefix("/agent/v1/")) or self.replies.get(path)
            reply = (queue.pop(0) if len(queue) > 1 else queue[0]) if queue else None
        if callable(reply):
            reply = reply(body)
        if reply is None:
            reply = (404, {"error": {"code": "not_found", "message": "no such page"}}, {})
        status, payload, headers = (tuple(reply) + ({},))[:3]
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        handler.send_response(status)
        handler.send_header("Content-Length", str(len(data)))
        if not isinstance(payload, bytes):
            handler.send_header("Content-Type", "application/json")
        for name, value in headers.items():
            handler.send_header(name, str(value))
        handler.end_headers()
        handler.wfile.write(data)

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def issue(ca, names=(NAME,), key=None):
    """A leaf for ``names`` from the tests' CA: ``(key PEM, cert PEM, chain PEM,
    fingerprint)``; with ``key`` (a public key), issued for that key."""
    ca_key, ca_cert = ca
    leaf_key, leaf = certs.make_leaf(ca_key, ca_cert, dns_names=list(names))
    if key is not None:
        now = datetime.datetime.now(datetime.timezone.utc)
        leaf = (x509.CertificateBuilder().subject_name(leaf.subject)
                .issuer_name(ca_cert.subject).public_key(key)
                .serial_number(x509.random_serial_number())
                .not_valid_before(now - datetime.timedelta(minutes=5))
                .not_valid_after(now + datetime.timedelta(days=30))
                .add_extension(x509.SubjectAlternativeName(
                    [x509.DNSName(n) for n in names]), critical=False)
                .sign(ca_key, hashes.SHA256()))
    fingerprint = hashlib.sha256(leaf.public_bytes(Encoding.DER)).hexdigest()
    return certs.key_pem(leaf_key), certs.cert_pem(leaf), certs.cert_pem(ca[1]), fingerprint


def install_entry(ca, request=17, name=NAME, *, key_pem=None, cert_pem=None, chain_pem=None,
                  fingerprint=None, sni=None, no_key=False):
    """One entry of a check-in's ``install``, for a new leaf of ``name``."""
    if cert_pem is None:
        new_key, cert_pem, chain_pem, fingerprint = issue(ca, (name,))
        key_pem = key_pem or new_key
    return {"request": request, "certificate": name, "version": 40 + request,
            "serial": "0a:1b", "sni": sni or name, "fingerprint": fingerprint,
            "files": {"private_key": None if no_key else key_pem, "certificate": cert_pem,
                      "ca_bundle": chain_pem, "fullchain": cert_pem + chain_pem}}


def check_in_answer(install=(), write=(), remove=(), csr=()):
    return (200, {"interval": 300, "poll_wait": 0, "install": list(install),
                  "challenges": {"write": list(write), "remove": list(remove)},
                  "csr": list(csr)})


def nginx_section(nginx: NginxServer, tmp_path: Path, **extra) -> dict:
    """A certificate section for the files, commands and TLS port of ``nginx``
    (a testbed NginxServer, or a TargetHost, which has the same names)."""
    section = {
        "private_key": str(nginx.private_key_path), "certificate": str(nginx.certificate_path),
        "ca_bundle": str(nginx.ca_bundle_path), "fullchain": str(nginx.fullchain_path),
        "document_root": str(nginx.webroot), "backup_dir": str(tmp_path / "backup"),
        "config_test": nginx.config_test_command, "reload": nginx.reload_command,
        "tls_check": f"{nginx.address}:{nginx.tls_port}",
    }
    section.update(extra)
    return section


def write_config(tmp_path: Path, portal: FakePortal | None, sections: dict[str, dict],
                 **agent) -> Path:
    """agent.conf in ``tmp_path`` with ``sections``; the state folder
    ``tmp_path/state``, enrolled with ``portal`` (a credential written as
    ``enrol`` writes it) unless ``portal`` is None."""
    values = {"state_dir": str(tmp_path / "state"), "tls_grace": "2"}
    if portal is not None:
        values["ca_file"] = str(portal.ca_path)
    values.update(agent)
    lines = ["[agent]"] + [f"{key} = {value}" for key, value in values.items()]
    for name, section in sections.items():
        lines += ["", f"[{name}]"] + [f"{key} = {value}" for key, value in section.items()]
    path = tmp_path / "agent.conf"
    path.write_text("\n".join(lines) + "\n")
    if portal is not None:
        state = StateDir(values["state_dir"])
        state.create()
        state.write_credential({"url": portal.url, "ca_file": str(portal.ca_path),
                                "token": "secret-token", "host": {"id": 7, "name": "web1"},
                                "enrolled_at": "2026-01-01T00:00:00Z", "poll_wait": 0})
    return path


# AGENT_TEST_PYTHON=/path/to/python3.9 runs every command of the tests with that
# Python, each in a process of its own: the agent's oldest Python, checked.
PYTHON = os.environ.get("AGENT_TEST_PYTHON") or sys.executable
IN_PROCESS = not os.environ.get("AGENT_TEST_PYTHON")


def run_agent(*argv: str) -> int:
    """The agent's command line, in this process (or, with AGENT_TEST_PYTHON,
    in one of its own, its output passed on); its exit code."""
    if IN_PROCESS:
        return cli.dispatch(list(argv))
    done = agent_process(*argv)
    sys.stdout.write(done.stdout)
    sys.stderr.write(done.stderr)
    return done.returncode


def agent_process(*argv: str, timeout: float = 60, **popen) -> subprocess.CompletedProcess:
    """The agent as a process of its own (``python -m fujissl_agent``)."""
    env = {**os.environ, "PYTHONPATH": str(AGENT_DIR)}
    return subprocess.run([PYTHON, "-m", "fujissl_agent", *argv], env=env,
                          capture_output=True, text=True, timeout=timeout, **popen)


def last_report(portal: FakePortal) -> dict:
    reports = portal.posted("reports")
    assert reports, f"no report; requests: {[r[:2] for r in portal.requests]}"
    return reports[-1]


def steps(report: dict) -> list[tuple[str, str]]:
    return [(step["name"], step["status"]) for step in report["steps"]]


def served(nginx, name=NAME):
    return tlscheck.served_leaf("127.0.0.1", nginx.tls_port, name)[0]


class ModeWatcher:
    """Looks at every file under some folders, again and again, while an
    installation runs (with umask 0, so that a file made with the default mode
    would be readable by all): any key file ever seen with group or other bits."""

    def __init__(self, *folders):
        self.folders, self.wider, self.seen = folders, [], set()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._watch, daemon=True)

    def _watch(self):
        while not self.stop.is_set():
            for folder in self.folders:
                for root, _dirs, files in os.walk(folder):
                    for name in files:
                        path = os.path.join(root, name)
                        try:
                            mode = stat.S_IMODE(os.lstat(path).st_mode)
                        except FileNotFoundError:
                            continue
                        self.seen.add(name)
                        if "key" in name and mode & 0o077:
                            self.wider.append((path, oct(mode)))

    def __enter__(self):
        self.umask = os.umask(0)
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join()
        os.umask(self.umask)
