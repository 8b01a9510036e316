"""A DNS credential's test: a TXT record created under each of its zones, seen
served by every authoritative server, then deleted, each step reported, so
that a wrong key or zone shows before the first renewal needs it."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from django.conf import settings
from django.utils.translation import gettext as _

from certificates.models import DNSCredential
from certificates.seams import dns_lookup
from certificates.seams.errors import PortalError

from .publishing import timings
from .writers import lookup, writer

# The acme-dns kind is tested through a registration's name, not under its zone.
TEST_LABEL = "_portal-test"


@dataclass(frozen=True)
class Outcome:
    step: str
    ok: bool
    detail: str


def test(credential: DNSCredential) -> list[Outcome]:
    """The steps of the test, in order; it stops at the first that failed (after
    deleting what it wrote)."""
    outcomes: list[Outcome] = []
    for zone in credential.zones:
        name = f"{TEST_LABEL}-{secrets.token_hex(4)}.{zone}"
        if credential.kind == "acme-dns":
            registrations = credential.secret_values.get("registrations", {})
            if not registrations:
                outcomes.append(Outcome("write", False, _(
                    "No name is registered with this acme-dns server yet: the certificate "
                    "page registers each name and shows the CNAME to create.")))
                return outcomes
            name = sorted(registrations)[0]
        if not _zone(credential, name, outcomes):
            return outcomes
    return outcomes


def _zone(credential: DNSCredential, name: str, outcomes: list[Outcome]) -> bool:
    value = secrets.token_urlsafe(16)
    target = writer(credential)
    try:
        target.add(name, value)
    except PortalError as exc:
        outcomes.append(Outcome("write", False, str(exc)))
        return False
    outcomes.append(Outcome("write", True, _("TXT record written at %(name)s") % {"name": name}))
    try:
        where = lookup()
        servers = dns_lookup.nameservers(where, dns_lookup.zone_for(where, name))
        answered = dns_lookup.wait_until_served(where, servers, name, {value},
                                                timeout=settings.DNS_PROPAGATION_TIMEOUT)
        outcomes.append(Outcome("served", True, _("Served by %(servers)s")
                                % {"servers": "; ".join(map(str, timings(answered)))}))
    except dns_lookup.NotServed as exc:
        outcomes.append(Outcome("served", False, _("%(error)s Served by: %(served)s") % {
            "error": exc, "served": "; ".join(map(str, timings(exc.answered))) or _("none")}))
    except PortalError as exc:
        outcomes.append(Outcome("served", False, str(exc)))
    try:
        target.delete(name, value)
    except PortalError as exc:
        outcomes.append(Outcome("delete", False, str(exc)))
        return False
    outcomes.append(Outcome("delete", True, _("TXT record deleted")))
    return all(o.ok for o in outcomes)
