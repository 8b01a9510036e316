"""The RFC 2136 seam: TXT records for DNS-01 through updates signed with TSIG
(dnspython), sent to the zone's primary server. Whether the zone's servers serve
them is dns_lookup's to find out.

Records are added, never replaced: a wildcard and its base name put two values at
the same `_acme-challenge` name, and another client may be validating too. They
are deleted value by value, so only what this portal added goes away.
"""

import logging
from dataclasses import dataclass

import dns.exception
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.ANY.TXT
import dns.tsig
import dns.update

from certificates.messages import message
from certificates.seams.errors import FailureKind, PortalError
from fujissl_portal import egress

logger = logging.getLogger(__name__)

TTL = 60


class DNSUpdateError(PortalError):
    kind = FailureKind.DNS_ERROR

    def __init__(self, message: object, *, transient: bool,
                 kind: FailureKind | None = None) -> None:
        # transient is required here: every failure at the DNS server must be sorted.
        super().__init__(message, transient=transient, kind=kind)


@dataclass(frozen=True)
class Server:
    """Where RFC 2136 updates go, and the TSIG key that signs them."""

    address: str
    port: int
    key_name: str
    secret: str
    algorithm: str = "hmac-sha256"
    timeout: float = 10

    @property
    def ip(self) -> str:
        """A permitted address of the server: queries go to it, never to the name
        resolved again behind the outbound policy's back."""
        try:
            return egress.checked_address(self.address, self.port)
        except egress.Refused as exc:
            raise DNSUpdateError(
                message("dns.outbound_refused", server=self.address),
                transient=False, kind=exc.kind) from exc
        except OSError as exc:
            raise DNSUpdateError(
                message("dns.unresolvable", server=self.address, error=exc),
                transient=True) from exc

    def tsig_key(self) -> dns.tsig.Key:
        return dns.tsig.Key(self.key_name, self.secret, self.algorithm)


def add_txt(server: Server, name: str, value: str) -> None:
    update = _update(server, name)
    update.add(dns.name.from_text(name), TTL, _txt(value))
    _send(server, update, name)


def delete_txt(server: Server, name: str, value: str) -> None:
    """Deletes exactly this value at `name`; other values there stay."""
    update = _update(server, name)
    update.delete(dns.name.from_text(name), _txt(value))
    _send(server, update, name)


def _txt(value: str) -> dns.rdtypes.ANY.TXT.TXT:
    return dns.rdtypes.ANY.TXT.TXT(dns.rdataclass.IN, dns.rdatatype.TXT, [value.encode()])


def _update(server: Server, name: str) -> dns.update.UpdateMessage:
    update = dns.update.UpdateMessage(_zone_of(server, name))
    update.use_tsig(server.tsig_key())
    return update


def _zone_of(server: Server, name: str) -> dns.name.Name:
    """The zone holding `name`, from the SOA the authoritative server returns."""
    query = dns.message.make_query(name, dns.rdatatype.SOA)
    response = _exchange(server, query, name)
    for section in (response.answer, response.authority):
        for rrset in section:
            if rrset.rdtype == dns.rdatatype.SOA:
                return rrset.name
    raise DNSUpdateError(
        message("dns.not_authoritative", server=server.address, name=name), transient=False)


def _send(server: Server, update: dns.update.UpdateMessage, name: str) -> None:
    response = _exchange(server, update, name)
    rcode = response.rcode()
    if rcode == dns.rcode.NOERROR:
        return
    # REFUSED and NOTAUTH mean the key or the server's policy: retrying won't help.
    raise DNSUpdateError(
        message("dns.update_refused", server=server.address, name=name,
                rcode=dns.rcode.to_text(rcode)),
        transient=rcode == dns.rcode.SERVFAIL)


def _exchange(server: Server, query: dns.message.Message, name: str) -> dns.message.Message:
    try:
        # TCP: updates and their answers are small, but TCP gives a clear
        # "connection refused" instead of a UDP timeout when the server is down.
        return dns.query.tcp(query, server.ip, port=server.port, timeout=server.timeout)
    except dns.tsig.PeerError as exc:
        raise DNSUpdateError(
            message("dns.tsig_rejected", server=server.address, name=name,
                    error=exc.__class__.__name__),
            transient=False) from exc
    except (OSError, dns.exception.Timeout, EOFError) as exc:
        # Refused, timed out or dropped: one message, so that an update cannot tell
        # what listens on which port; the log has the detail.
        logger.info("DNS exchange with %s:%s failed: %r", server.address, server.port, exc)
        raise DNSUpdateError(
            message("dns.unreachable", server=server.address, port=server.port),
            transient=True) from exc
