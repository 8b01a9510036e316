"""acme-dns registrations, one per certificate name: made once, kept in the
credential's encrypted secrets, and the CNAME each needs said to the person."""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings
from django.db import transaction

from certificates.models import Certificate, DNSCredential, DNSKind
from certificates.seams import acme_dns


@dataclass(frozen=True)
class Delegation:
    """The CNAME a person creates so that acme-dns answers for ``name``."""

    name: str
    record: str  # _acme-challenge.<name>
    target: str  # the registration's fulldomain
    credential: str


def registration(credential: DNSCredential, fulldomain: str) -> acme_dns.Registration | None:
    stored = credential.secret_values.get("registrations", {}).get(fulldomain)
    if stored is None:
        return None
    return acme_dns.Registration(stored["username"], stored["password"], stored["subdomain"],
                                 stored["fulldomain"])


def delegations(certificate: Certificate) -> list[Delegation]:
    """Each name of ``certificate`` with its acme-dns CNAME, registering the names
    that have none yet (with the first acme-dns credential it chose)."""
    credential = certificate.dns_credentials.filter(kind=DNSKind.ACME_DNS).order_by("pk").first()
    if credential is None:
        return []
    bases = sorted({n[2:] if n.startswith("*.") else n for n in certificate.names()})
    found = {entry.get("name"): fulldomain for fulldomain, entry
             in credential.secret_values.get("registrations", {}).items()}
    for base in bases:
        if base not in found:
            # Registered outside any transaction: the API call is network I/O.
            made = acme_dns.register(credential.server, timeout=settings.DNS_UPDATE_TIMEOUT)
            _store(credential.pk, base, made)
            found[base] = made.fulldomain
    return [Delegation(base, f"_acme-challenge.{base}", found[base], credential.name)
            for base in bases]


def _store(credential_pk: int, base: str, made: acme_dns.Registration) -> None:
    with transaction.atomic():
        credential = DNSCredential.objects.select_for_update().get(pk=credential_pk)
        values = credential.secret_values
        values.setdefault("registrations", {})[made.fulldomain] = {**made.as_dict(),
                                                                   "name": base}
        credential.secret_values = values
        credential.save(update_fields=["secrets", "updated_at"])
