"""A DNS credential's TXT records written and deleted through its seam: RFC 2136,
a provider through dns-lexicon, or acme-dns."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import Protocol

from django.conf import settings

from certificates.messages import message
from certificates.models import DNSCredential, DNSKind
from certificates.seams import acme_dns, dns, dns_lookup, dns_providers
from certificates.seams.errors import FailureKind, PortalError

from . import acme_dns_names


class Writer(Protocol):
    def add(self, name: str, value: str) -> None: ...

    def delete(self, name: str, value: str) -> None: ...


def lookup() -> dns_lookup.Lookup:
    """Where zones and name servers are looked up, from the settings."""
    resolvers = []
    for entry in settings.DNS_RESOLVERS:
        host, _sep, port = entry.rpartition(":") if entry.count(":") == 1 else (entry, "", "")
        resolvers.append((host or entry, int(port) if port else 53))
    return dns_lookup.Lookup(resolvers=tuple(resolvers), port=settings.DNS_AUTHORITATIVE_PORT,
                             timeout=settings.DNS_UPDATE_TIMEOUT)


class RFC2136Writer:
    def __init__(self, credential: DNSCredential) -> None:
        self.server = dns.Server(
            address=credential.server, port=credential.port,
            key_name=credential.tsig_key_name,
            secret=credential.secret_values.get("tsig_secret", ""),
            algorithm=credential.tsig_algorithm or "hmac-sha256",
            timeout=settings.DNS_UPDATE_TIMEOUT)

    def add(self, name: str, value: str) -> None:
        dns.add_txt(self.server, name, value)

    def delete(self, name: str, value: str) -> None:
        dns.delete_txt(self.server, name, value)


class LexiconWriter:
    def __init__(self, credential: DNSCredential) -> None:
        self.account = dns_providers.Account(
            provider=credential.provider, options=dict(credential.options),
            secrets=credential.secret_values, timeout=settings.DNS_UPDATE_TIMEOUT)

    def _zone(self, name: str) -> str:
        # The provider is told the zone as DNS has it, never left to guess it.
        return dns_lookup.zone_for(lookup(), name)

    def add(self, name: str, value: str) -> None:
        zone = self._zone(name)
        _retried(lambda: dns_providers.add_txt(self.account, zone, name, value))

    def delete(self, name: str, value: str) -> None:
        zone = self._zone(name)
        _retried(lambda: dns_providers.delete_txt(self.account, zone, name, value))


# A provider refuses a burst of changes to one zone with a 5xx or a 429 (PowerDNS
# on SQLite: "database is locked"; hosted APIs: rate limits): a few tries, apart
# and at random moments, before the step fails and the run waits for its backoff.
PROVIDER_TRIES = 4


def _retried(call: Callable[[], None]) -> None:
    for attempt in range(1, PROVIDER_TRIES + 1):
        try:
            call()
            return
        except dns_providers.ProviderError as exc:
            if not exc.transient or attempt == PROVIDER_TRIES:
                raise
        time.sleep(random.uniform(0.2, 0.6) * attempt)  # noqa: S311 (spread, not secrecy)


class AcmeDNSWriter:
    """acme-dns has no delete: its two newest values per registration stay, and
    older ones go as new ones come."""

    def __init__(self, credential: DNSCredential) -> None:
        self.credential = credential

    def add(self, name: str, value: str) -> None:
        registration = acme_dns_names.registration(self.credential, name)
        if registration is None:
            raise PortalError(message("acmedns.not_registered", name=name), transient=False,
                              kind=FailureKind.DNS_ERROR)
        acme_dns.update(self.credential.server, registration, value,
                        timeout=settings.DNS_UPDATE_TIMEOUT)

    def delete(self, name: str, value: str) -> None:
        return None


def writer(credential: DNSCredential) -> Writer:
    kinds: dict[str, type[RFC2136Writer | LexiconWriter | AcmeDNSWriter]] = {
        DNSKind.RFC2136: RFC2136Writer, DNSKind.LEXICON: LexiconWriter,
        DNSKind.ACME_DNS: AcmeDNSWriter}
    return kinds[credential.kind](credential)
