"""Where the portal's outbound connections may go, on a tenant's behalf.

Every connection the portal opens because of what a tenant entered (webhooks, a
CA's directory, a host's SSH and TLS addresses, a DNS server) goes through this
module. It resolves the name itself, checks every address the name resolves to,
and connects to the checked address: a name that answers differently a moment
later (DNS rebinding) cannot slip between the check and the connection.

Refused unless ``OUTBOUND_ALLOW`` allows them: loopback, private, link-local,
multicast, unspecified, reserved and other non-global addresses, and the cloud
metadata services. ``OUTBOUND_ALLOW`` lists networks (``10.1.0.0/16``) and
``host:port`` pairs (``ca.internal:443``, ``[fd00::5]:8443``). A metadata address
is allowed only when named exactly (a single address or a host:port pair), never
by a wider network that happens to contain it.

No models here: the seams below the services use it. Its errors are
``PortalError``s, like every seam's.
"""

from __future__ import annotations

import contextvars
import functools
import ipaddress
import logging
import socket
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import requests
from requests.adapters import BaseAdapter, HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import ConnectTimeoutError, NewConnectionError
from urllib3.util.timeout import _DEFAULT_TIMEOUT

from certificates.messages import message

# The error base has no dependencies of its own, so that this module, below
# every seam, can share it without depending on the portal's models or services.
from certificates.seams.errors import FailureKind, PortalError

logger = logging.getLogger(__name__)

# Instance metadata services hand out credentials to whoever asks from inside.
METADATA = frozenset(ipaddress.ip_address(a) for a in (
    "169.254.169.254", "169.254.170.2", "100.100.100.200", "168.63.129.16", "fd00:ec2::254",
))

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
# What socket.getaddrinfo gives for each address: family, type, protocol, name, sockaddr.
AddressInfo = tuple[socket.AddressFamily, socket.SocketKind, int, str,
                    tuple[str, int] | tuple[str, int, int, int] | tuple[int, bytes]]


class Refused(PortalError):
    """The outbound policy does not allow this destination. Permanent: waiting
    will not change the policy; a person must change the address (or the
    operator the policy). ``str()`` is for tenants and names no address."""

    kind = FailureKind.OUTBOUND_REFUSED

    def __init__(self, host: str, port: int | None, reason: str = "") -> None:
        self.host, self.port, self.reason = host, port, reason
        super().__init__(message("egress.refused", host=host))


class ResponseTooLarge(PortalError):
    """A peer sent more than the portal reads from it. Permanent: the URL points
    at something other than what it should."""

    kind = FailureKind.RESPONSE_TOO_LARGE

    def __init__(self, url: str, limit: int) -> None:
        self.url, self.limit = url, limit
        super().__init__(message("egress.too_large", host=urlsplit(url).hostname,
                                 kb=limit // 1024))


@dataclass(frozen=True)
class Rules:
    networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()
    pairs: frozenset[tuple[str, int]] = frozenset()


def parse_rules(entries: Iterable[str]) -> Rules:
    """``OUTBOUND_ALLOW`` as rules; ValueError naming the entry that is neither a
    network nor a host:port pair."""
    networks, pairs = [], set()
    for entry in (e.strip() for e in entries):
        if not entry:
            continue
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
            continue
        except ValueError:
            pass
        host, sep, port = entry.rpartition(":")
        host = host.strip("[]").lower().rstrip(".")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"OUTBOUND_ALLOW: {entry!r} is neither a network (10.0.0.0/8) "
                             f"nor a host:port pair (ca.internal:443)")
        pairs.add((_canonical_host(host), int(port)))
    return Rules(tuple(networks), frozenset(pairs))


def _canonical_host(host: str) -> str:
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        return host.lower().rstrip(".")


@functools.lru_cache(maxsize=8)
def _rules_for(entries: tuple[str, ...]) -> Rules:
    return parse_rules(entries)


def rules() -> Rules:
    from django.conf import settings

    return _rules_for(tuple(settings.OUTBOUND_ALLOW))


NAT64 = ipaddress.ip_network("64:ff9b::/96")


def _unwrapped(address: Address) -> Address:
    """The IPv4 address an IPv6 one carries to (mapped, NAT64, 6to4), else itself."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return address.ipv4_mapped
        if address in NAT64:
            return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if address.sixtofour is not None:
            return address.sixtofour
    return address


def is_restricted(address: Address) -> bool:
    """Whether the address needs OUTBOUND_ALLOW: anything but a public unicast address."""
    address = _unwrapped(address)
    return (address in METADATA or address.is_loopback or address.is_private
            or address.is_link_local or address.is_multicast or address.is_unspecified
            or address.is_reserved or not address.is_global)


def permitted(host: str, port: int | None, address: Address, policy: Rules | None = None) -> bool:
    policy = policy or rules()
    if port is not None and (_canonical_host(host), port) in policy.pairs:
        return True
    address = _unwrapped(address)
    if port is not None and (str(address), port) in policy.pairs:
        return True
    if address in METADATA:
        return any(net.num_addresses == 1 and address in net for net in policy.networks)
    if not is_restricted(address):
        return True
    return any(address.version == net.version and address in net for net in policy.networks)


def resolve(host: str, port: int) -> list[AddressInfo]:
    """getaddrinfo's (family, type, proto, canonname, sockaddr) for ``host``,
    each address checked. Refused when any of them is not permitted: a name
    with one internal address among public ones is refused as a whole."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except UnicodeError as exc:
        raise socket.gaierror(socket.EAI_NONAME, str(exc)) from exc
    policy = rules()
    for info in infos:
        address = ipaddress.ip_address(str(info[4][0]).split("%", 1)[0])
        if not permitted(host, port, address, policy):
            logger.warning("outbound connection to %s:%s (%s) refused by OUTBOUND_ALLOW",
                           host, port, address)
            raise Refused(host, port, f"{address} is not allowed")
    return infos


def checked_address(host: str, port: int) -> str:
    """One permitted address of ``host``, for clients that take an address (DNS)."""
    return str(resolve(host, port)[0][4][0])


def connect(host: str, port: int, timeout: float | None, *,
            source_address: tuple[str, int] | None = None,
            socket_options: Iterable[tuple[int, int, int | bytes]] | None = None,
            ) -> socket.socket:
    """A TCP connection to a checked address of ``host``; the name is never
    resolved again behind the check. Raises Refused or OSError."""
    last_error: OSError | None = None
    for family, type_, proto, _name, sockaddr in resolve(host, port):
        sock = None
        try:
            sock = socket.socket(family, type_, proto)
            for option in socket_options or ():
                sock.setsockopt(*option)
            if timeout is not None:
                sock.settimeout(timeout)
            if source_address:
                sock.bind(source_address)
            sock.connect(sockaddr)
            return sock
        except OSError as exc:
            last_error = exc
            if sock is not None:
                sock.close()
    raise last_error or OSError(f"{host} has no address")


def url_host_allowed(url: str) -> bool:
    """Whether OUTBOUND_ALLOW itself names the URL's host (for plain http), rather
    than the host merely being public."""
    parts = urlsplit(url)
    host, port = parts.hostname or "", parts.port or (443 if parts.scheme == "https" else 80)
    policy = rules()
    if (_canonical_host(host), port) in policy.pairs:
        return True
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        return False
    addresses = {_unwrapped(ipaddress.ip_address(str(i[4][0]).split("%", 1)[0])) for i in infos}
    return bool(addresses) and all(
        (str(a), port) in policy.pairs
        or any(a.version == n.version and a in n for n in policy.networks)
        for a in addresses)


def scheme_allowed(url: str) -> bool:
    """https always; plain http only to a host OUTBOUND_ALLOW names."""
    scheme = urlsplit(url).scheme.lower()
    return scheme == "https" or (scheme == "http" and url_host_allowed(url))


# -- requests: every connection of a session through the policy -----------------


def _new_checked_conn(conn: _CheckedHTTPConnection | _CheckedHTTPSConnection) -> socket.socket:
    timeout = None if conn.timeout is _DEFAULT_TIMEOUT else conn.timeout
    try:
        sock = connect(conn._dns_host, conn.port, timeout,
                       source_address=conn.source_address, socket_options=conn.socket_options)
    except TimeoutError as exc:
        raise ConnectTimeoutError(conn, f"Connection to {conn.host} timed out.") from exc
    except OSError as exc:
        raise NewConnectionError(conn, f"Failed to establish a new connection: {exc}") from exc
    # Kept on the connection: http.client lets go of the socket once an answer
    # that ends with the connection has begun.
    conn.peer_address = sock.getpeername()[0].split("%", 1)[0]
    return sock


class _CheckedHTTPConnection(HTTPConnection):
    peer_address: str | None = None

    def _new_conn(self) -> socket.socket:
        return _new_checked_conn(self)


class _CheckedHTTPSConnection(HTTPSConnection):
    # Only the socket changes: SNI and certificate checks still use the URL's name.
    peer_address: str | None = None

    def _new_conn(self) -> socket.socket:
        return _new_checked_conn(self)


class _CheckedHTTPPool(HTTPConnectionPool):
    ConnectionCls = _CheckedHTTPConnection


class _CheckedHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _CheckedHTTPSConnection


class Adapter(HTTPAdapter):
    """An HTTPAdapter whose connections are opened through the policy, and which
    reads at most ``max_body`` bytes of any answer. Beyond it, ``truncate`` keeps
    the first ``max_body`` bytes and drops the connection; otherwise the answer
    is refused with ResponseTooLarge. Either way no more is read.

    Each redirect hop is a request of its own through this adapter, so it meets
    the same check. Through a proxy (an operator's setting) the proxy resolves
    the name: the URL's host is checked here before the request leaves.
    ``response.peer_address`` is the address that answered (None through a proxy).
    """

    def __init__(self, *, max_body: int, truncate: bool = False, **kwargs: Any) -> None:
        self.max_body, self.truncate = max_body, truncate
        super().__init__(**kwargs)

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        # Only the direct pools: a proxy's own pools connect to the operator's proxy.
        self.poolmanager.pool_classes_by_scheme = {"http": _CheckedHTTPPool,
                                                   "https": _CheckedHTTPSPool}

    def send(self, request: requests.PreparedRequest, stream: bool = False,
             timeout: float | tuple[float | None, float | None] | None = None,
             verify: bool | str = True, cert: str | tuple[str, str] | None = None,
             proxies: dict[str, str] | None = None) -> requests.Response:
        url = request.url or ""
        proxy = requests.utils.select_proxy(url, proxies)
        if proxy:
            parts = urlsplit(url)
            resolve(parts.hostname or "",
                    parts.port or (443 if parts.scheme == "https" else 80))
        response = super().send(request, stream=True, timeout=timeout, verify=verify,
                                cert=cert, proxies=proxies)
        # requests' Response has no field for it; api.webhooks reads it with getattr.
        response.peer_address = None if proxy else _peer_of(response)  # type: ignore[attr-defined]
        if not stream:
            self._read_capped(response)
        return response

    def _read_capped(self, response: requests.Response) -> None:
        chunks, size = [], 0
        try:
            for chunk in response.raw.stream(min(64 * 1024, self.max_body + 1),
                                             decode_content=True):
                chunks.append(chunk)
                size += len(chunk)
                if size > self.max_body:
                    break
        except Exception as exc:
            response.close()
            raise requests.ConnectionError(exc, request=response.request) from exc
        body = b"".join(chunks)
        if size > self.max_body:
            # The connection is dropped, not drained: the rest is never read.
            response.close()
            if not self.truncate:
                raise ResponseTooLarge(response.url, self.max_body)
            body = body[:self.max_body]
        response._content = body
        response._content_consumed = True
        response.raw.release_conn()


def _peer_of(response: requests.Response) -> str | None:
    return getattr(getattr(response.raw, "connection", None), "peer_address", None)


def session(*, max_body: int, truncate: bool = False) -> requests.Session:
    """A requests session whose every connection goes through the policy."""
    mounted = requests.Session()
    mount(mounted, max_body=max_body, truncate=truncate)
    return mounted


def mount(target: requests.Session, *, max_body: int, truncate: bool = False) -> None:
    adapter = Adapter(max_body=max_body, truncate=truncate)
    target.mount("https://", adapter)
    target.mount("http://", adapter)


# Libraries that make their own requests (apprise for the notification channels,
# dns-lexicon's providers) take no session from the portal: they make their own,
# or call requests.post. Each request of any session asks Session.get_adapter for
# its adapter, so that is where the policy goes, for as long as a block lasts and
# only in the block's context (its thread): other threads' requests keep their
# adapters, and two threads' blocks run at once. (Replacing the HTTPAdapter that
# requests builds would reach every thread of the process, and so allow only one
# block at a time.) A library that hands a request to a thread of its own leaves
# the context: its caller keeps the work in the calling thread.
_scoped_adapter: contextvars.ContextVar[Adapter | None] = contextvars.ContextVar(
    "egress_scoped_adapter", default=None)
_unscoped_get_adapter = requests.Session.get_adapter


def _get_adapter(self: requests.Session, url: str) -> BaseAdapter:
    adapter = _scoped_adapter.get()
    return _unscoped_get_adapter(self, url) if adapter is None else adapter


@contextmanager
def every_requests_session(adapter: Adapter) -> Iterator[None]:
    """Within the block, every request of any requests session in this thread,
    made before the block or in it, goes through ``adapter`` (whatever the
    URL's scheme: a file or socket URL is then refused); closed afterwards."""
    if requests.Session.get_adapter is not _get_adapter:
        requests.Session.get_adapter = _get_adapter  # type: ignore[method-assign]
    token = _scoped_adapter.set(adapter)
    try:
        yield
    finally:
        _scoped_adapter.reset(token)
        adapter.close()
