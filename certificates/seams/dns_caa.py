"""Whether a name resolves, and whether its CAA records (RFC 8659) let a CA
issue for it: asked of the portal's resolvers (DNS_RESOLVERS, else the
system's), as a CA's own resolver would answer, so that a person hears of it
when saving rather than from the first renewal.

No egress check is needed here: only the operator's resolvers are asked, never
a server named by a tenant's DNS.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import dns.exception
import dns.name
import dns.rdatatype
import dns.resolver
from django.utils.translation import gettext as _

from certificates.seams.dns_lookup import Lookup, LookupError, _resolver

# The property tags RFC 8659 defines; a critical property with another tag
# forbids issuance by a CA that does not know it (section 4.1).
KNOWN_TAGS = {"issue", "issuewild", "iodef", "issuemail", "issuevmc"}
CRITICAL = 128


@dataclass(frozen=True)
class CAA:
    flags: int
    tag: str
    value: str

    def issuer(self) -> str:
        """The CA named by an issue or issuewild value ("" for ";", which allows none)."""
        return self.value.split(";", 1)[0].strip().lower().rstrip(".")


class Deadline:
    """The seconds left for all the lookups of one check: a slow resolver must
    not hold a person's save for long."""

    def __init__(self, seconds: float) -> None:
        self.end = time.monotonic() + seconds

    def left(self) -> float:
        remaining = self.end - time.monotonic()
        if remaining <= 0:
            raise LookupError(_("The DNS lookups took too long."), transient=True)
        return remaining


def _ask(lookup: Lookup, deadline: Deadline, name: str, rdtype: str) -> dns.resolver.Answer:
    resolver = _resolver(lookup)
    resolver.lifetime = min(resolver.lifetime, deadline.left())
    resolver.timeout = min(resolver.timeout, resolver.lifetime)
    return resolver.resolve(name, rdtype)


def resolves(lookup: Lookup, name: str, deadline: Deadline) -> bool:
    """Whether `name` has an A or AAAA record (through any CNAME); a lookup
    that fails for another reason than "no such name or record" raises."""
    for rdtype in ("A", "AAAA"):
        try:
            _ask(lookup, deadline, name, rdtype)
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            continue
        except dns.exception.DNSException as exc:
            raise LookupError(_("%(name)s could not be looked up (%(error)s).")
                              % {"name": name, "error": exc.__class__.__name__},
                              transient=True) from exc
        return True
    return False


def relevant_caa(lookup: Lookup, name: str, deadline: Deadline) -> list[CAA]:
    """The relevant CAA record set of `name` (RFC 8659, section 3): its own,
    else its parent's, climbing towards the root; empty when no name on the way
    has one.

    The climb stops below the top-level domain: none publishes CAA records, and
    a resolver that cannot reach one (a private TLD) would leave every name
    unchecked."""
    current = dns.name.from_text(name)
    while len(current) > 2:  # "test." is two labels: the TLD and the root
        try:
            answer = _ask(lookup, deadline, current.to_text(), "CAA")
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            current = current.parent()
            continue
        except dns.exception.DNSException as exc:
            raise LookupError(_("The CAA records of %(name)s could not be looked up "
                                "(%(error)s).") % {"name": current.to_text(True),
                                                   "error": exc.__class__.__name__},
                              transient=True) from exc
        records = [CAA(r.flags, r.tag.decode().lower(), r.value.decode())
                   for r in answer if r.rdtype == dns.rdatatype.CAA]
        if records:
            return records
        current = current.parent()
    return []


def allowed_issuers(records: list[CAA], *, wildcard: bool) -> set[str] | None:
    """The CAs `records` let issue (for a wildcard name if `wildcard`); None when
    they do not restrict issuance at all."""
    if any(r.flags & CRITICAL and r.tag not in KNOWN_TAGS for r in records):
        return set()
    tags = ("issuewild",) if wildcard and any(r.tag == "issuewild" for r in records) \
        else ("issue",)
    chosen = [r for r in records if r.tag in tags]
    if not chosen:
        return None
    return {r.issuer() for r in chosen} - {""}


def permits(records: list[CAA], identities: list[str], *, wildcard: bool) -> bool:
    """Whether a CA known by any of `identities` may issue under `records`."""
    allowed = allowed_issuers(records, wildcard=wildcard)
    if allowed is None:
        return True
    return any(identity.strip().lower().rstrip(".") in allowed for identity in identities)
