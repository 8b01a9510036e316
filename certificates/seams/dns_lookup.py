"""Looking names up the way a CA will: the zone that holds a name, that zone's
authoritative name servers, a name's CNAME chain, and whether each of those
servers serves a TXT value yet.

The portal's resolvers (``DNS_RESOLVERS``, else the system's) only find zones
and name servers; every answer that matters (a CNAME, a TXT value) is asked of
the authoritative servers directly, so that no cache answers for them. Their
addresses come from DNS a tenant controls, so each is checked against the
egress policy before it is asked.
"""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Callable
from dataclasses import dataclass

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.nameserver
import dns.query
import dns.rdatatype
import dns.resolver

from certificates.messages import message
from certificates.seams.errors import FailureKind, PortalError
from fujissl_portal import egress

# A CNAME chain longer than this is refused: CAs follow a handful of hops at most.
MAX_CHAIN = 8
_POLL_SECONDS = 0.25


class LookupError(PortalError):  # noqa: A001 (the seam's own, not the builtin)
    kind = FailureKind.DNS_ERROR

    def __init__(self, message: object, *, transient: bool,
                 kind: FailureKind | None = None) -> None:
        super().__init__(message, transient=transient, kind=kind)


class NotServed(LookupError):
    """Some authoritative servers never served the value: ``laggards`` names them."""

    def __init__(self, message: object, *, laggards: list[Nameserver],
                 answered: dict[Nameserver, float]) -> None:
        self.laggards, self.answered = laggards, answered
        super().__init__(message, transient=True)


@dataclass(frozen=True)
class Lookup:
    """Where zones and name servers are looked up (host, port pairs; none: the
    system's resolvers), and the port authoritative servers answer on."""

    resolvers: tuple[tuple[str, int], ...] = ()
    port: int = 53
    timeout: float = 5


@dataclass(frozen=True, order=True)
class Nameserver:
    name: str
    address: str

    def __str__(self) -> str:
        return f"{self.name} ({self.address})"


def _resolver(lookup: Lookup) -> dns.resolver.Resolver:
    if not lookup.resolvers:
        resolver = dns.resolver.Resolver()
    else:
        resolver = dns.resolver.Resolver(configure=False)
        resolver.nameservers = [dns.nameserver.Do53Nameserver(host, port)
                                for host, port in lookup.resolvers]
    # Each try at most 2 s within the whole timeout: a lost UDP answer is asked
    # again rather than waited for until the end.
    resolver.lifetime, resolver.timeout = lookup.timeout, min(2.0, lookup.timeout)
    resolver.cache = None  # a zone just changed: nothing remembered from before
    return resolver


def zone_for(lookup: Lookup, name: str) -> str:
    """The zone holding ``name`` (the owner of the SOA its lookup ends at).

    A resolver follows a CNAME at ``name``, and fails on a chain that loops or
    ends at a server that is down; the zone of a CNAME's owner is its parent's
    (a zone's apex has no CNAME), so the parent is asked then, once."""
    resolver = _resolver(lookup)
    asked = dns.name.from_text(name)
    for current in (asked, asked.parent()):
        try:
            return dns.resolver.zone_for_name(current, resolver=resolver).to_text(
                omit_final_dot=True)
        except dns.resolver.NoRootSOA as exc:
            raise LookupError(message("lookup.no_zone", name=name),
                              transient=False) from exc
        except dns.resolver.NoNameservers as exc:
            failure: dns.exception.DNSException = exc
        except dns.exception.DNSException as exc:
            failure = exc
            break
    raise LookupError(message("lookup.zone_failed", name=name, error=failure.__class__.__name__),
                      transient=True) from failure


def nameservers(lookup: Lookup, zone: str) -> list[Nameserver]:
    """Every address of every name server of ``zone``, each allowed by the policy."""
    resolver = _resolver(lookup)
    try:
        names = sorted(r.target.to_text(omit_final_dot=True)
                       for r in resolver.resolve(zone, "NS"))
    except dns.exception.DNSException as exc:
        raise LookupError(message("lookup.nameservers_failed", zone=zone,
                                  error=exc.__class__.__name__),
                          transient=True) from exc
    found: list[Nameserver] = []
    for name in names:
        for rdtype in ("A", "AAAA"):
            try:
                answer = resolver.resolve(name, rdtype)
            except (dns.resolver.NoAnswer, dns.resolver.NXDOMAIN):
                continue
            except dns.exception.DNSException as exc:
                raise LookupError(message("lookup.address_failed", server=name,
                                          error=exc.__class__.__name__),
                                  transient=True) from exc
            found += [Nameserver(name, r.address) for r in answer]
    if not found:
        raise LookupError(message("lookup.no_nameserver_address", zone=zone), transient=False)
    for server in found:
        _check_policy(lookup, server)
    return found


def _check_policy(lookup: Lookup, server: Nameserver) -> None:
    if not egress.permitted(server.name, lookup.port, ipaddress.ip_address(server.address)):
        raise LookupError(
            message("lookup.outbound_refused", server=server),
            transient=False, kind=FailureKind.OUTBOUND_REFUSED)


def _ask(lookup: Lookup, server: Nameserver, name: str, rdtype: str) -> dns.message.Message:
    query = dns.message.make_query(name, rdtype)
    query.flags &= ~dns.flags.RD  # the server's own data, never what it looked up elsewhere
    try:
        return dns.query.udp(query, server.address, port=lookup.port, timeout=lookup.timeout,
                             ignore_trailing=True)
    except (OSError, dns.exception.DNSException, EOFError) as exc:
        raise LookupError(message("lookup.no_answer", server=server, name=name,
                                  error=exc.__class__.__name__),
                          transient=True) from exc


def cname_chain(lookup: Lookup, name: str) -> list[str]:
    """``name`` and the names its CNAMEs lead to, each asked of an authoritative
    server of its own zone; the last one is where a TXT record is written."""
    chain = [name.rstrip(".").lower()]
    while True:
        current = chain[-1]
        server = nameservers(lookup, zone_for(lookup, current))[0]
        response = _ask(lookup, server, current, "CNAME")
        targets = [r.target.to_text(omit_final_dot=True).lower() for rrset in response.answer
                   if rrset.rdtype == dns.rdatatype.CNAME
                   and rrset.name == dns.name.from_text(current) for r in rrset]
        if not targets:
            return chain
        if targets[0] in chain or len(chain) > MAX_CHAIN:
            raise LookupError(message("lookup.cname_loop", name=name, max=MAX_CHAIN,
                                      chain=" → ".join(chain + targets[:1])),
                              transient=False)
        chain.append(targets[0])


def served(lookup: Lookup, server: Nameserver, name: str) -> set[str]:
    """The TXT values ``server`` itself serves at ``name``."""
    response = _ask(lookup, server, name, "TXT")
    return {b"".join(rdata.strings).decode() for rrset in response.answer
            if rrset.rdtype == dns.rdatatype.TXT for rdata in rrset}


def wait_until_served(lookup: Lookup, servers: list[Nameserver], name: str, values: set[str],
                      *, timeout: float,
                      clock: Callable[[], float] = time.monotonic) -> dict[Nameserver, float]:
    """Asks each server until every one serves all of ``values`` at ``name``; the
    seconds each took to first do so. NotServed names the servers that never did.
    A server that does not answer is asked again: it may be restarting."""
    start = clock()
    answered: dict[Nameserver, float] = {}
    while True:
        for server in servers:
            if server in answered:
                continue
            try:
                if values <= served(lookup, server, name):
                    answered[server] = clock() - start
            except LookupError:
                pass
        laggards = [s for s in servers if s not in answered]
        if not laggards:
            return answered
        if clock() - start > timeout:
            raise NotServed(
                message("lookup.not_served", servers=", ".join(map(str, laggards)), name=name,
                        seconds=int(timeout)), laggards=laggards, answered=answered)
        time.sleep(_POLL_SECONDS)
