"""The DNS-provider seam: TXT records at a provider with an HTTP API (PowerDNS,
Cloudflare, Gehirn, Sakura Cloud, ConoHa, Value-Domain...) through dns-lexicon.

Every provider of lexicon is offered from lexicon's own metadata (the options
each one declares), so that no provider needs code here. The portal gives the
zone: lexicon's own zone guessing asks the public suffix list and the system
resolver, which fails offline and for private zones.

Every HTTP connection lexicon makes during a call here goes through the egress
policy (``egress.every_requests_session``): its providers call ``requests``
themselves, so the policy is put under ``requests.Session`` for the duration
of the call, in this thread only, rather than trusted to each provider.
"""

from __future__ import annotations

import argparse
import functools
import logging
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import requests

from certificates.messages import message
from certificates.seams.errors import FailureKind, PortalError
from fujissl_portal import egress

logger = logging.getLogger(__name__)

TTL = 60
# What the portal reads of a provider's answer: a zone's records, not a download.
MAX_ANSWER_BYTES = 4 * 1024 * 1024
# Providers that do not talk HTTP (they would bypass the egress policy: ddns sends
# RFC 2136 itself, localzone writes zone files on the portal's own disk) or that
# guess which provider to use.
EXCLUDED = frozenset({"auto", "ddns", "localzone"})
# Options whose name says they are secrets: stored encrypted and never shown back.
_SECRET = re.compile(r"token|secret|password|passwd|key|credential", re.IGNORECASE)


class ProviderError(PortalError):
    kind = FailureKind.DNS_ERROR

    def __init__(self, message: object, *, transient: bool,
                 kind: FailureKind | None = None) -> None:
        super().__init__(message, transient=transient, kind=kind)


@dataclass(frozen=True)
class Option:
    name: str
    help: str
    secret: bool


@dataclass(frozen=True)
class Account:
    """One provider account: its options (``secrets`` among them kept apart)."""

    provider: str
    options: Mapping[str, str] = field(default_factory=dict)
    secrets: Mapping[str, str] = field(default_factory=dict)
    timeout: float = 10


@functools.cache
def providers() -> dict[str, tuple[Option, ...]]:
    """Each provider lexicon can use here (its extra packages installed), with
    the options its command-line parser declares."""
    from lexicon._private.discovery import (  # noqa: PLC0415 (loaded once, on first use)
        find_providers,
        load_provider_module,
    )

    found: dict[str, tuple[Option, ...]] = {}
    for name, available in find_providers().items():
        if not available or name in EXCLUDED:
            continue
        parser = argparse.ArgumentParser(add_help=False)
        load_provider_module(name).Provider.configure_parser(parser)
        found[name] = tuple(
            Option(name=action.dest, help=action.help or "",
                   secret=bool(_SECRET.search(action.dest)))
            for action in parser._actions if action.dest != "help")
    return found


def add_txt(account: Account, zone: str, name: str, value: str) -> None:
    with _provider(account, zone) as provider:
        provider.create_record("TXT", name, value)


def delete_txt(account: Account, zone: str, name: str, value: str) -> None:
    """Deletes exactly this value at ``name``; other values there stay."""
    with _provider(account, zone) as provider:
        provider.delete_record(None, "TXT", name, value)


@contextmanager
def _provider(account: Account, zone: str) -> Iterator[Any]:
    """An authenticated lexicon provider for ``zone``; any error on the way sorted."""
    from lexicon._private.discovery import load_provider_module  # noqa: PLC0415
    from lexicon.config import ConfigResolver  # noqa: PLC0415

    if account.provider not in providers():
        raise ProviderError(message("provider.not_offered", provider=account.provider),
                            transient=False)
    options = {**account.options, **account.secrets}
    config = ConfigResolver().with_dict({
        "provider_name": account.provider, "domain": zone.rstrip("."), "ttl": TTL,
        account.provider: options})
    try:
        with egress.every_requests_session(_PolicyAdapter(timeout=account.timeout)):
            provider = load_provider_module(account.provider).Provider(config)
            provider.authenticate()
            yield provider
    except Exception as exc:  # lexicon's providers raise anything: each is sorted here
        raise _sorted(exc, account, zone) from exc


def _sorted(exc: Exception, account: Account, zone: str) -> PortalError:
    """Authentication refused and an unknown zone are permanent; timeouts, lost
    connections, rate limits and 5xx transient. The provider's message is kept,
    without any secret of the account."""
    if isinstance(exc, PortalError):  # the egress policy's, or this seam's own
        return exc
    detail = scrub(f"{exc.__class__.__name__}: {exc}", account.secrets.values())
    params = {"provider": account.provider, "zone": zone, "detail": detail}
    if isinstance(exc, requests.HTTPError) and exc.response is not None:
        status = exc.response.status_code
        if status in (401, 403):
            return ProviderError(message("provider.auth_refused", **params), transient=False)
        if status in (404, 422):
            return ProviderError(message("provider.zone_unknown", **params), transient=False)
        return ProviderError(message("provider.error", **params),
                             transient=status == 429 or status >= 500)
    if isinstance(exc, requests.ConnectionError | requests.Timeout):
        return ProviderError(message("provider.unreachable", **params), transient=True)
    return ProviderError(message("provider.failed", **params), transient=False)


def scrub(text: str, secrets: Any) -> str:
    """``text`` without any of ``secrets``, as typed or as a URL carries them."""
    for secret in secrets:
        if secret and len(str(secret)) >= 4:
            for form in {str(secret), quote(str(secret), safe=""), quote(str(secret))}:
                text = text.replace(form, "***")
    return text


# -- every connection lexicon opens, through the egress policy -------------------


class _PolicyAdapter(egress.Adapter):
    """The egress adapter, with a timeout where the provider gave none (several
    of lexicon's providers give none, and a hung provider would hold a worker)."""

    def __init__(self, *, timeout: float) -> None:
        self.default_timeout = timeout
        super().__init__(max_body=MAX_ANSWER_BYTES)

    def send(self, request: requests.PreparedRequest, stream: bool = False,
             timeout: float | tuple[float | None, float | None] | None = None,
             verify: bool | str = True, cert: str | tuple[str, str] | None = None,
             proxies: dict[str, str] | None = None) -> requests.Response:
        # An API key goes over https, or over http only to a host the operator named.
        if not egress.scheme_allowed(request.url or ""):
            raise ProviderError(
                message("provider.url_refused", url=(request.url or "").split("?", 1)[0]),
                transient=False, kind=FailureKind.OUTBOUND_REFUSED)
        return super().send(request, stream=stream, timeout=timeout or self.default_timeout,
                            verify=verify, cert=cert, proxies=proxies)
