"""Discovery: what serves TLS at the addresses, names and ranges a person gives,
and which certificates sit in files on enrolled hosts.

Every address is checked against the egress policy before anything is opened,
and a scan is bounded by settings (addresses, ports, SNI names, timeout,
concurrency). An address:port is first asked without a name; only those that
answer TLS are asked again with each SNI name (the names given, and the names
of the organisation's known certificates), so a range of silent addresses
costs one attempt per port. Findings are inventory rows in the FOUND status,
one per fingerprint, with every place they were seen; a person accepts or
dismisses them.
"""

import datetime
import ipaddress
import posixpath
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Protocol

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db.models import Q, QuerySet
from django.utils import timezone
from django.utils.translation import gettext as _

from accounts.models import Organization, User
from certificates.messages.catalogue import CATALOGUE
from certificates.models import Certificate, InventoryCertificate, Source, TargetHost
from certificates.seams import ssh, starttls
from certificates.seams.errors import PortalError
from certificates.seams.ssh_session import Session

from . import importing, monitoring, targets
from .parsing import ImportRefused, Leaf, read_files

REFUSED_ADDRESSES = "discovery.refused_addresses"

Status = InventoryCertificate.Status


@dataclass
class Probe:
    address: str
    port: int
    sni: str
    observation: monitoring.Observation | None = None
    protocol: str = starttls.TLS

    def place(self) -> dict:
        place = {"address": self.address, "port": self.port, "sni": self.sni}
        if self.protocol != starttls.TLS:
            place["protocol"] = self.protocol
        return place


@dataclass
class Found:
    """What a discovery found so far: each certificate once, however many
    batches it was seen in."""

    probes: int = 0
    served: int = 0
    rows: list[InventoryCertificate] = field(default_factory=list)
    managed_prints: set[str] = field(default_factory=set)
    # Files that could not be read: each error as raised (stored as a message key).
    errors: list[PortalError] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def managed(self) -> int:
        return len(self.managed_prints)

    def add(self, stored: importing.Imported) -> list[InventoryCertificate]:
        """Takes in one store's rows; those not found before."""
        known = {row.pk for row in self.rows}
        new = [row for row in stored.rows if row.pk not in known]
        self.rows += new
        self.managed_prints.update(stored.managed)
        return new


class Progress(Protocol):
    """Told as a discovery goes: how many more are planned, and each batch done
    (`new`: the certificates this batch found first)."""

    def planned(self, count: int) -> None: ...

    def checked(self, count: int, found: Found, new: list[InventoryCertificate]) -> None: ...


def known_names(organization: Organization, given: list[str]) -> list[str]:
    """SNI names to try: those given, then the organisation's certificates'
    common names (managed and in the inventory), at most DISCOVERY_MAX_NAMES."""
    names = list(dict.fromkeys(given))
    limit = settings.DISCOVERY_MAX_NAMES
    for source in (Certificate.objects.filter(organization=organization),
                   InventoryCertificate.objects.filter(organization=organization)
                   .exclude(common_name="")):
        for name in source.order_by("common_name").values_list("common_name", flat=True)[
                :limit]:
            if len(names) >= limit:
                return names
            if not name.startswith("*.") and name not in names:
                names.append(name)
    return names


def _probe_all(probes: list[Probe], now: datetime.datetime | None,
               each_batch: Callable[[list[Probe]], None] | None = None) -> None:
    """Every probe observed, DISCOVERY_CONCURRENCY at a time; `each_batch` is
    called in this thread (so it may use the database) with every
    DISCOVERY_CONCURRENCY probes done, in order, while the others go on."""
    timeout, width = settings.DISCOVERY_TIMEOUT, settings.DISCOVERY_CONCURRENCY

    def one(probe: Probe) -> Probe:
        probe.observation = monitoring.observe(probe.address, probe.port, probe.sni,
                                               timeout=timeout, now=now, verify=False,
                                               protocol=probe.protocol)
        return probe

    batch: list[Probe] = []
    with ThreadPoolExecutor(max_workers=width) as pool:
        for probe in pool.map(one, probes):
            batch.append(probe)
            if each_batch is not None and len(batch) >= width:
                each_batch(batch)
                batch = []
    if each_batch is not None and batch:
        each_batch(batch)


def plan(addresses: list[str], ports: list[tuple[int, str]]) -> list[Probe]:
    """First round: each address:port, a name given as a target as its own SNI."""
    return [Probe(address, port, "" if _is_ip(address) else address, protocol=protocol)
            for address in addresses for port, protocol in ports]


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _second_round(first: list[Probe], names: list[str]) -> list[Probe]:
    answered = {(p.address, p.port, p.protocol) for p in first
                if p.observation and p.observation.chain}
    return [Probe(address, port, name, protocol=protocol)
            for address, port, protocol in sorted(answered) for name in names]


def check_scan(targets_text: str, ports_text: str) -> tuple[list[str], list[tuple[int, str]]]:
    """The addresses and (port, protocol)s of a scan; ValidationError (field
    "targets" or "ports") when the scan is refused, before anything is opened."""
    addresses = targets.expand_targets(targets_text)
    ports = targets.parse_ports(ports_text)
    refused = targets.refused_addresses(addresses, ports[0][0])
    if refused:
        # The code names the catalogue's message (discovery.refused_addresses), so
        # that a discovery refused on its worker stores a key, not words.
        raise ValidationError({"targets": [ValidationError(
            str(CATALOGUE[REFUSED_ADDRESSES]), code=REFUSED_ADDRESSES,
            params={"addresses": ", ".join(refused[:20])})]})
    return addresses, ports


def scan(organization: Organization, *, targets_text: str, ports_text: str = "",
         names: Sequence[str] = (), by: User | None = None,
         now: datetime.datetime | None = None, progress: Progress | None = None) -> Found:
    """Scans, storing what answered as findings batch by batch (so that a
    person following `progress` sees them as they come). ValidationError as
    `check_scan`."""
    now = now or timezone.now()
    started = timezone.now()
    addresses, ports = check_scan(targets_text, ports_text)
    found = Found()

    def batch_done(probes: list[Probe]) -> None:
        new = _store(organization, probes, found, by=by)
        if progress is not None:
            progress.checked(len(probes), found, new)

    # The names known before this scan: what it stores as it goes is no SNI name to try.
    sni_names = known_names(organization, list(names))
    first = plan(addresses, ports)
    if progress is not None:
        progress.planned(len(first))
    _probe_all(first, now, batch_done)
    second = _second_round(first, sni_names)
    if progress is not None and second:
        progress.planned(len(second))
    _probe_all(second, now, batch_done)
    found.seconds = (timezone.now() - started).total_seconds()
    return found


def _store(organization: Organization, probes: list[Probe], found: Found, *,
           by: User | None) -> list[InventoryCertificate]:
    """One write per certificate found, with every place it answered at; the
    rows `found` did not hold yet."""
    found.probes += len(probes)
    by_leaf: dict[str, tuple[Leaf, list[dict]]] = {}
    for probe in probes:
        leaf = probe.observation.leaf if probe.observation else None
        if leaf is None:
            continue
        found.served += 1
        place = probe.place()
        by_leaf.setdefault(leaf.fingerprint, (leaf, []))[1].append(place)
    if not by_leaf:
        return []
    stored = importing.store(
        organization, [leaf for leaf, _places in by_leaf.values()], by=by,
        source=Source.DISCOVERED, status=Status.FOUND,
        places_of={fingerprint: places for fingerprint, (_leaf, places) in by_leaf.items()})
    return found.add(stored)


def check_host(host: TargetHost) -> None:
    """ValidationError naming the host unless its files can be read over SSH."""
    if host.is_agent or not host.host_key_confirmed:
        raise ValidationError({"host": [_(
            "%(host)s is not enrolled over SSH: confirm its host key first.")
            % {"host": host.name}]})


MAX_PATHS = 50


def check_paths(paths: Sequence[str]) -> list[str]:
    """The paths to read on a host: absolute, at least one and at most MAX_PATHS
    (ValidationError naming "paths" otherwise), in the order given, once each."""
    given = list(dict.fromkeys(path.strip() for path in paths if path.strip()))
    if not given:
        raise ValidationError({"paths": [_(
            "Give at least one file or folder to read, e.g. /etc/nginx/ssl.")]})
    relative = [path for path in given if not path.startswith("/")]
    if relative:
        raise ValidationError({"paths": [_(
            "Paths must be absolute (start with /): %(paths)s.")
            % {"paths": ", ".join(relative[:10])}]})
    if len(given) > MAX_PATHS:
        raise ValidationError({"paths": [_(
            "At most %(count)d paths at a time.") % {"count": MAX_PATHS}]})
    return given


def read_host_files(host: TargetHost, paths: list[str], *, by: User | None = None) -> Found:
    """Certificates in `paths` (files, or folders read one level deep) on an
    enrolled host, read over SSH; a key file next to its certificate comes along."""
    check_host(host)
    files: list[tuple[str, bytes]] = []
    errors: list[PortalError] = []
    with ssh.connect(host) as session:
        for path in paths:
            for name in _files_under(session, path):
                try:
                    files.append((name, session.read_file(name)))
                except PortalError as exc:
                    errors.append(exc)
    found = Found(probes=len(files), errors=errors)
    try:
        leaves = read_files(files) if files else []
    except ImportRefused as exc:
        raise ValidationError({"paths": [exc.message]}) from exc
    _store_files(host, leaves, found, by=by)
    return found


def _files_under(session: Session, path: str) -> list[str]:
    if not session.exists(path):
        return []
    if not session.is_dir(path):
        return [path]
    return [posixpath.join(path, name) for name in sorted(session.listdir(path))
            if name.rsplit(".", 1)[-1].lower() in {"pem", "crt", "cer", "key"}]


def _store_files(host: TargetHost, leaves: list[Leaf], found: Found, *,
                 by: User | None) -> None:
    for leaf in leaves:
        for path in leaf.origins or [leaf.origin]:
            place = {"host": host.name, "host_id": host.pk, "path": path}
            found.add(importing.store(host.organization, [leaf], by=by,
                                      source=Source.DISCOVERED, status=Status.FOUND,
                                      place=place))
        found.served += 1


def findings(organization: Organization) -> QuerySet[InventoryCertificate]:
    return InventoryCertificate.objects.filter(organization=organization,
                                               status=Status.FOUND).order_by("expires_at")


def accept(rows: Iterable[InventoryCertificate], *, watch: bool = True) -> int:
    """Findings into the inventory; the endpoints they were served at watched."""
    accepted = 0
    for row in rows:
        if row.status != Status.FOUND:
            continue
        InventoryCertificate.objects.filter(pk=row.pk).update(status=Status.ACCEPTED)
        accepted += 1
        for place in row.seen_at if watch else []:
            if isinstance(place, dict) and "address" in place:
                _watch_quietly(row.organization, place)
    return accepted


def _watch_quietly(organization: Organization, place: dict) -> None:
    try:
        monitoring.watch(organization, address=place["address"], port=int(place["port"]),
                         sni_name=place.get("sni", ""),
                         protocol=place.get("protocol", starttls.TLS))
    except ValidationError:
        pass  # watched already, or no longer allowed: the finding is accepted all the same


def dismiss(rows: Iterable[InventoryCertificate]) -> int:
    return InventoryCertificate.objects.filter(
        Q(pk__in=[row.pk for row in rows]), status=Status.FOUND,
    ).update(status=Status.DISMISSED)
