"""IP addresses as certificate names (RFC 8738)."""

from __future__ import annotations

import ipaddress

from ._common import _as_text


def ip_address_of(value) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The IP address ``value`` spells exactly (IPv6 with or without brackets),
    or None; shorthand such as "10.1" is none."""
    raw = _as_text(value).strip()
    if raw.startswith("[") and raw.endswith("]"):
        raw = raw[1:-1]
    if "%" in raw:  # a zone index names an interface of this machine, not a server
        return None
    try:
        return ipaddress.ip_address(raw)
    except ValueError:
        return None


def is_ip_address(name) -> bool:
    """Whether a normalised certificate name is an IP address."""
    return isinstance(name, str) and ip_address_of(name) is not None
