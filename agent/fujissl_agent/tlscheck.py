"""Which leaf the server serves: a TLS handshake with the SNI name, the
certificate looked at, not verified (a new leaf may not be trusted here), and
the rounds after a reload until the new leaf has been served several times in
a row (right after a reload, a worker from before it may still answer)."""

from __future__ import annotations

import hashlib
import socket
import ssl
import time

HANDSHAKE_TIMEOUT = 5.0
CONFIRMATIONS = 3
PAUSE_FIRST, PAUSE_MAX = 0.05, 1.0


def served_leaf(host: str, port: int, sni: str,
                timeout: float = HANDSHAKE_TIMEOUT) -> tuple[str, str]:
    """(SHA-256 hex of the served leaf's DER, "") or ("", why there is none)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    try:
        with socket.create_connection((host, port), timeout=timeout) as raw:
            with context.wrap_socket(raw, server_hostname=sni or None) as tls:
                der = tls.getpeercert(binary_form=True)
    except (OSError, ssl.SSLError, ValueError) as exc:
        return "", f"TLS handshake with {host}:{port} (SNI {sni or 'none'}) failed: {exc}"
    if not der:
        return "", f"{host}:{port} sent no certificate"
    return hashlib.sha256(der).hexdigest(), ""


def wait_for_leaf(host: str, port: int, sni: str, expected: str, grace: float,
                  *, confirmations: int = CONFIRMATIONS) -> tuple[bool, str, str]:
    """Handshake until ``expected`` has been served ``confirmations`` times in
    a row, within ``grace`` seconds (a streak under way at the deadline may
    finish). Returns (served, the last fingerprint seen, the last error)."""
    deadline = time.monotonic() + grace
    streak, pause = 0, PAUSE_FIRST
    served, error = "", ""
    while True:
        served, error = served_leaf(host, port, sni)
        streak = streak + 1 if served == expected else 0
        if streak >= confirmations:
            return True, served, ""
        late = time.monotonic() >= deadline
        if late and (not streak or time.monotonic() >= deadline + confirmations):
            return False, served, error
        if streak:
            time.sleep(PAUSE_FIRST)
        else:
            time.sleep(max(0.0, min(pause, deadline - time.monotonic())))
            pause = min(pause * 2, PAUSE_MAX)


def check_sni(name: str) -> str:
    """The name to send for a certificate's common name: a wildcard cannot be
    sent as it is, so ``*.example.test`` is checked as
    ``fujissl-agent-check.example.test`` (which the wildcard covers)."""
    if name.startswith("*."):
        return "fujissl-agent-check." + name[2:]
    return name
