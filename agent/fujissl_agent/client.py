"""The portal over HTTPS (urllib and ssl): JSON requests under ``/agent/v1/``,
the portal's certificate verified (against the system's CAs, or ``ca_file``),
redirects refused (the token goes to the portal's own address only)."""

from __future__ import annotations

import json
import socket
import ssl
import urllib.error
import urllib.request
from typing import Any

from . import __version__

USER_AGENT = f"fujissl-agent/{__version__}"
TIMEOUT = 30.0
MAX_BODY = 64 * 1024 * 1024


class PortalUnreachable(Exception):
    """No answer from the portal: connection refused, TLS failure, timeout,
    a 5xx, or an answer that is not the protocol's. Nothing changes here."""


class PortalRefused(Exception):
    """A 4xx with the protocol's ``{"error": {"code", "message"}}``."""

    def __init__(self, status: int, code: str, message: str,
                 retry_after: float | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.retry_after = retry_after

    def __str__(self) -> str:
        return f"{self.message} ({self.code})"


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):
        raise urllib.error.HTTPError(req.full_url, code,
                                     f"redirected to {newurl}, which the agent does not follow",
                                     headers, fp)


class Portal:
    def __init__(self, url: str, *, token: str = "", ca_file: str = "") -> None:
        self.url = url.rstrip("/")
        self.token = token
        try:
            self.context = ssl.create_default_context(cafile=ca_file or None)
        except (OSError, ssl.SSLError) as exc:
            raise PortalUnreachable(f"cannot load the CA file {ca_file}: {exc}") from None
        self.opener = urllib.request.build_opener(
            urllib.request.HTTPSHandler(context=self.context), _NoRedirect())

    def post(self, path: str, body: dict[str, Any], *, timeout: float = TIMEOUT,
             auth: bool = True) -> dict[str, Any]:
        """POST ``body`` as JSON to ``/agent/v1/<path>``; the answer's JSON."""
        data = json.dumps(body).encode()
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if auth:
            headers["Authorization"] = f"Bearer {self.token}"
        raw = self._send(urllib.request.Request(f"{self.url}/agent/v1/{path}", data=data,
                                                headers=headers, method="POST"), timeout)
        try:
            answer = json.loads(raw.decode("utf-8")) if raw.strip() else {}
        except ValueError:
            raise PortalUnreachable(f"{self.url}/agent/v1/{path} answered something that is "
                                    "not JSON; is the url the portal's?") from None
        if not isinstance(answer, dict):
            raise PortalUnreachable(f"{self.url}/agent/v1/{path} answered JSON that is not "
                                    "an object")
        return answer

    def download(self, path: str, *, timeout: float = 120.0) -> bytes:
        """GET ``/agent/download/<path>`` (no token)."""
        return self._send(urllib.request.Request(f"{self.url}/agent/download/{path}",
                                                 method="GET"), timeout)

    def _send(self, request: urllib.request.Request, timeout: float) -> bytes:
        request.add_header("User-Agent", USER_AGENT)
        where = request.full_url
        try:
            with self.opener.open(request, timeout=timeout) as response:
                return response.read(MAX_BODY)
        except urllib.error.HTTPError as exc:
            raise _refusal(exc, where) from None
        except urllib.error.URLError as exc:
            reason = exc.reason
            if isinstance(reason, ssl.SSLCertVerificationError):
                raise PortalUnreachable(f"{where}: the portal's TLS certificate is not trusted "
                                        f"({reason.verify_message}); ca_file names the CA "
                                        "that issued it") from None
            raise PortalUnreachable(f"{where}: {_words(reason)}") from None
        except (socket.timeout, TimeoutError):
            raise PortalUnreachable(f"{where}: no answer within {timeout:g} seconds") from None
        except (OSError, ssl.SSLError) as exc:  # a connection dropped half-way, mostly
            raise PortalUnreachable(f"{where}: {_words(exc)}") from None


def _words(reason: object) -> str:
    if isinstance(reason, OSError) and reason.strerror:
        return reason.strerror.lower()
    return str(reason) or type(reason).__name__


def _refusal(exc: urllib.error.HTTPError, where: str) -> Exception:
    if exc.code >= 500 or exc.code < 400:
        return PortalUnreachable(f"{where}: the portal answered {exc.code} {exc.reason}")
    try:
        error = json.loads(exc.read(65536).decode("utf-8"))["error"]
        code, message = str(error["code"]), str(error.get("message", ""))
    except (ValueError, KeyError, TypeError, OSError):
        code, message = f"http_{exc.code}", f"{where}: the portal answered {exc.code} {exc.reason}"
    retry_after = None
    if exc.headers is not None and exc.headers.get("Retry-After"):
        try:
            retry_after = max(0.0, float(exc.headers["Retry-After"]))
        except ValueError:
            retry_after = None
    return PortalRefused(exc.code, code, message or code, retry_after)
