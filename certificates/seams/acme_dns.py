"""The acme-dns seam: its small HTTP API (github.com/joohoi/acme-dns).

An acme-dns server holds one TXT name per registration; the person points
``_acme-challenge.<name>`` at it with a CNAME once, and the portal updates the
value through the API with the registration's own user and key. acme-dns keeps
the two newest values of each registration and has no delete: a value goes
away when two newer ones are written.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin

import requests

from certificates.messages import message
from certificates.seams.errors import FailureKind, PortalError
from fujissl_portal import egress

MAX_ANSWER_BYTES = 64 * 1024


class AcmeDNSError(PortalError):
    kind = FailureKind.DNS_ERROR

    def __init__(self, message: object, *, transient: bool,
                 kind: FailureKind | None = None) -> None:
        super().__init__(message, transient=transient, kind=kind)


@dataclass(frozen=True)
class Registration:
    username: str
    password: str
    subdomain: str
    fulldomain: str

    def as_dict(self) -> dict[str, str]:
        return {"username": self.username, "password": self.password,
                "subdomain": self.subdomain, "fulldomain": self.fulldomain}


def register(server: str, *, timeout: float) -> Registration:
    """A new registration: the CNAME target is its ``fulldomain``."""
    body = _call(server, "register", {}, headers={}, timeout=timeout, secrets=())
    try:
        return Registration(str(body["username"]), str(body["password"]),
                            str(body["subdomain"]), str(body["fulldomain"]).rstrip(".").lower())
    except (KeyError, TypeError) as exc:
        raise AcmeDNSError(message("acmedns.field_missing", server=server, field=exc),
                           transient=False) from exc


def update(server: str, registration: Registration, value: str, *, timeout: float) -> None:
    _call(server, "update", {"subdomain": registration.subdomain, "txt": value},
          headers={"X-Api-User": registration.username, "X-Api-Key": registration.password},
          timeout=timeout, secrets=(registration.password,))


def _call(server: str, path: str, payload: dict[str, str], *, headers: dict[str, str],
          timeout: float, secrets: tuple[str, ...]) -> Any:
    url = urljoin(server.rstrip("/") + "/", path)
    if not egress.scheme_allowed(url):
        raise AcmeDNSError(message("acmedns.url_refused", server=server), transient=False,
                           kind=FailureKind.OUTBOUND_REFUSED)
    try:
        with egress.session(max_body=MAX_ANSWER_BYTES) as session:
            response = session.post(url, json=payload, headers=headers, timeout=timeout)
    except (requests.ConnectionError, requests.Timeout) as exc:
        raise AcmeDNSError(message("acmedns.unreachable", server=server,
                                   error=exc.__class__.__name__),
                           transient=True) from exc
    if response.status_code in (401, 403):
        raise AcmeDNSError(message("acmedns.refused", server=server), transient=False)
    if not response.ok:
        detail = response.text[:300]
        for secret in secrets:
            detail = detail.replace(secret, "***")
        raise AcmeDNSError(message("acmedns.status", server=server, status=response.status_code,
                                   detail=detail), transient=response.status_code >= 500)
    try:
        return response.json()
    except ValueError as exc:
        raise AcmeDNSError(message("acmedns.not_json", server=server), transient=False) from exc
