"""What a person may ask the portal to connect to: addresses, names, ranges and
ports for endpoints and discovery scans, bounded by settings and checked
against the egress policy before anything is opened. Each refusal is a
ValidationError naming the field and the value."""

import ipaddress
import socket

from django.conf import settings
from django.core.exceptions import ValidationError
from django.utils.translation import gettext as _

from fujissl_portal import egress

from .. import validators
from ..seams import starttls


def normalize_address(value: str, *, field: str = "address") -> str:
    """An IP address or a host name (A-labels), stripped."""
    value = value.strip().strip("[]")
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        pass
    try:
        return validators.normalize_domain_name(value, label=_("Address"),
                                                allow_wildcard=False)
    except ValidationError as exc:
        raise ValidationError({field: exc.messages}) from exc


def check_allowed(address: str, port: int, *, field: str = "address") -> None:
    """Refused by the egress policy, or not resolvable: an error naming it."""
    try:
        egress.resolve(address, port)
    except egress.Refused as exc:
        raise ValidationError({field: [_(
            "%(address)s is not allowed by the portal's outbound policy (loopback, private "
            "and metadata addresses are refused unless the operator allows them).")
            % {"address": address}]}) from exc
    except OSError as exc:
        raise ValidationError({field: [_("%(address)s does not resolve to an address.")
                                       % {"address": address}]}) from exc


def _network(item: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network | None:
    try:
        return ipaddress.ip_network(item, strict=False)
    except ValueError:
        return None


def _expand_one(item: str, room: int) -> list[str]:
    """The addresses of one range "a.b.c.d/n" or "a.b.c.d-a.b.c.e", or the one
    address or name; at most `room` (the caller says how many are left)."""
    if "/" in item and (network := _network(item)) is not None:
        if network.num_addresses > room:
            raise ValidationError({"targets": [_(
                "%(range)s holds %(count)d addresses; a scan may cover at most %(max)d.")
                % {"range": item, "count": network.num_addresses,
                   "max": settings.DISCOVERY_MAX_ADDRESSES}]})
        hosts = list(network.hosts()) or [network.network_address]
        return [str(address) for address in hosts]
    if "-" in item and item.count(".") >= 6:
        first, last = (ipaddress.ip_address(part.strip()) for part in item.split("-", 1))
        count = int(last) - int(first) + 1
        if count < 1 or count > room:
            raise ValidationError({"targets": [_(
                "%(range)s holds %(count)d addresses; a scan may cover at most %(max)d.")
                % {"range": item, "count": max(count, 0),
                   "max": settings.DISCOVERY_MAX_ADDRESSES}]})
        return [str(first + offset) for offset in range(count)]
    return [normalize_address(item, field="targets")]


def expand_targets(text: str) -> list[str]:
    """Addresses and names of a scan, ranges expanded, each once, bounded by
    DISCOVERY_MAX_ADDRESSES."""
    limit = settings.DISCOVERY_MAX_ADDRESSES
    found: list[str] = []
    for item in text.replace(",", " ").split():
        try:
            more = _expand_one(item, limit - len(found))
        except ValueError as exc:  # a malformed "a-b" range
            raise ValidationError({"targets": [_("%(item)s is not an address, a name or a "
                                                 "range.") % {"item": item}]}) from exc
        found += [address for address in more if address not in found]
        if len(found) > limit:
            raise ValidationError({"targets": [_("A scan may cover at most %(max)d addresses.")
                                               % {"max": limit}]})
    if not found:
        raise ValidationError({"targets": [_("Give at least one address, name or range.")]})
    return found


def parse_ports(text: str) -> list[tuple[int, str]]:
    """Ports of a scan, each among DISCOVERY_PORTS, with the protocol spoken
    before TLS: "587/smtp" names it, a well-known mail port (25, 587, 143, 110)
    implies it, any other port is plain TLS."""
    allowed = settings.DISCOVERY_PORTS
    ports: list[tuple[int, str]] = []
    for item in text.replace(",", " ").split() or [str(p) for p in allowed]:
        number, _slash, protocol = item.lower().partition("/")
        if not number.isascii() or not number.isdigit() or int(number) not in allowed:
            raise ValidationError({"ports": [_(
                "%(port)s is not a port the portal scans; allowed: %(allowed)s.")
                % {"port": item, "allowed": ", ".join(str(p) for p in allowed)}]})
        protocol = protocol or starttls.WELL_KNOWN.get(int(number), starttls.TLS)
        if protocol not in starttls.PROTOCOLS:
            raise ValidationError({"ports": [_(
                "%(port)s: after the slash, name tls, smtp, imap or pop3.") % {"port": item}]})
        if (int(number), protocol) not in ports:
            ports.append((int(number), protocol))
    return ports


def refused_addresses(addresses: list[str], port: int) -> list[str]:
    """The addresses of `addresses` the egress policy refuses (or that do not
    resolve), checked before a scan opens anything."""
    refused = []
    for address in addresses:
        try:
            egress.resolve(address, port)
        except (egress.Refused, OSError, socket.gaierror):
            refused.append(address)
    return refused
