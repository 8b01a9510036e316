"""Monitored endpoints: the served chain fetched, verified and kept as history;
what needs a person told once.

`observe` talks TLS (through the seam, so through the egress policy) and
touches no row; `record` writes the outcome in one short transaction under the
endpoint's lock and decides there which alerts are new; the alerts go after the
commit (house style 4). `check_due` is the beat's scan: it claims due endpoints
with a lease, observes them concurrently (bounded by settings) and records
each in turn.
"""

import datetime
import functools
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from cryptography import x509
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext, gettext_lazy

from accounts.models import Organization
from certificates import alerts
from certificates.messages import message, stored_fields
from certificates.models import (
    CertificateVersion,
    EndpointCheck,
    InventoryCertificate,
    MonitoredEndpoint,
    Notification,
    Source,
)
from certificates.seams import starttls, tls
from certificates.signals import announce

from . import importing, targets, verification
from .parsing import Leaf

Result = MonitoredEndpoint.Result
_PORTS = gettext_lazy("Ports are whole numbers from 1 to 65535.")


@dataclass
class Observation:
    chain: list[x509.Certificate] = field(default_factory=list)
    problems: list[dict] = field(default_factory=list)
    # Why there is no chain: a message of the catalogue, or an error that carries one.
    error: object = ""

    @property
    def leaf(self) -> Leaf | None:
        if not self.chain:
            return None
        return Leaf(self.chain[0], "", chain=self.chain[1:])


def observe(address: str, port: int, sni: str, *, timeout: float,
            now: datetime.datetime | None = None, verify: bool = True,
            protocol: str = starttls.TLS) -> Observation:
    """What `address:port` serves for `sni` (after the STARTTLS of a mail
    `protocol`), and its problems (unless not `verify`: discovery only wants the
    leaf). No database."""
    try:
        ders = tls.served_chain(address, port, sni, timeout=timeout, protocol=protocol,
                                client_name=settings.STARTTLS_CLIENT_NAME)
    except starttls.StartTLSRefused as exc:
        # Kept as a problem (a code and its words), so that it reads in the
        # reader's language; no chain, so the endpoint is "unreachable".
        return Observation(problems=[verification.problem(f"starttls_{exc.code}",
                                                          **exc.details)])
    except tls.TLSCheckError as exc:
        return Observation(error=exc)
    try:
        chain = [x509.load_der_x509_certificate(der) for der in ders]
    except ValueError:
        return Observation(error=message("endpoint.unreadable"))
    if not verify:
        return Observation(chain=chain)
    problems = verification.verify(chain, sni or address, now or timezone.now())
    return Observation(chain=chain, problems=problems)


def _place(endpoint: MonitoredEndpoint) -> dict:
    place = {"address": endpoint.address, "port": endpoint.port, "sni": endpoint.sni_name}
    if endpoint.starttls:
        place["protocol"] = endpoint.protocol
    return place


def _served(endpoint: MonitoredEndpoint,
            leaf: Leaf) -> tuple[InventoryCertificate | None, int | None]:
    """The inventory row, or the managed certificate, of the served leaf."""
    managed = (CertificateVersion.objects
               .filter(certificate__organization=endpoint.organization_id,
                       fingerprint_sha256=leaf.fingerprint)
               .values_list("certificate_id", flat=True).first())
    if managed is not None:
        return None, managed
    # Watching an endpoint is a person's choice: what it serves joins the inventory.
    stored = importing.store(endpoint.organization, [leaf], source=Source.DISCOVERED,
                             place=_place(endpoint))
    return stored.rows[0], None


def _events(endpoint: MonitoredEndpoint, observation: Observation, changed: bool,
            managed: bool, now: datetime.datetime) -> list[tuple[str, str]]:
    """(kind, event key) of what this check tells, each once per leaf."""
    leaf = observation.leaf
    if leaf is None or managed:  # a managed certificate has alerts of its own
        return []
    fingerprint, found = leaf.fingerprint, []
    if observation.problems:
        codes = ",".join(sorted(p["code"] for p in observation.problems))
        found.append((Notification.Kind.ENDPOINT_PROBLEM, f"problem:{fingerprint}:{codes}"))
    if changed:
        found.append((Notification.Kind.ENDPOINT_CHANGED, f"changed:{fingerprint}"))
    expires = leaf.certificate.not_valid_after_utc
    if now < expires <= now + datetime.timedelta(days=settings.EXPIRY_WARNING_DAYS):
        found.append((Notification.Kind.ENDPOINT_EXPIRING, f"expiring:{fingerprint}"))
    return [(kind, key) for kind, key in found if key not in endpoint.told]


def record(endpoint_id: int, observation: Observation, *,
           now: datetime.datetime | None = None) -> EndpointCheck:
    """Writes the check and the endpoint's new state; tells what is new."""
    now = now or timezone.now()
    with transaction.atomic():
        endpoint = (MonitoredEndpoint.objects.select_for_update()
                    .select_related("organization").get(pk=endpoint_id))
        check, events = _apply(endpoint, observation, now)
    for kind, key in events:
        transaction.on_commit(functools.partial(tell, endpoint, kind, key, check))
    return check


def _apply(endpoint: MonitoredEndpoint, observation: Observation,
           now: datetime.datetime) -> tuple[EndpointCheck, list[tuple[str, str]]]:
    leaf, row, managed, changed = observation.leaf, None, None, False
    if leaf is None:
        result, fingerprint = Result.UNREACHABLE, ""
    else:
        fingerprint = leaf.fingerprint
        changed = bool(endpoint.served_fingerprint) and fingerprint != endpoint.served_fingerprint
        row, managed = _served(endpoint, leaf)
        result = Result.PROBLEM if observation.problems else Result.OK
    check = EndpointCheck.objects.create(
        endpoint=endpoint, checked_at=now, result=result, fingerprint_sha256=fingerprint,
        changed=changed, problems=observation.problems,
        **stored_fields("error", observation.error))
    events = _events(endpoint, observation, changed, managed is not None, now)
    endpoint.result, endpoint.problems, endpoint.last_checked_at = (
        result, observation.problems, now)
    if leaf is not None:
        endpoint.served_fingerprint, endpoint.certificate = fingerprint, row
        endpoint.managed_certificate_id = managed
    endpoint.next_check_at = now + datetime.timedelta(
        seconds=settings.ENDPOINT_CHECK_INTERVAL_SECONDS)
    endpoint.told = [*endpoint.told, *(key for _kind, key in events)][-50:]
    endpoint.save()
    return check, events


def tell(endpoint: MonitoredEndpoint, kind: str, event: str, check: EndpointCheck) -> None:
    """Mail and webhook for one event of `endpoint`."""
    served = endpoint.certificate
    name = served.common_name if served else endpoint.sni_name or endpoint.address
    days = (served.expires_at - check.checked_at).days if served else 0
    extra = {"name": name, "days": days, "problems": check.problems,
             "fingerprint": check.fingerprint_sha256}
    alerts.notify(kind, endpoint=endpoint, event=event, once=True, extra=extra)
    announce(f"endpoint.{kind.removeprefix('endpoint_')}",
             organization=endpoint.organization, payload={
                 "endpoint": endpoint.pk, "address": endpoint.address, "port": endpoint.port,
                 "sni": endpoint.sni_name, "name": name, "days": days,
                 "fingerprint": check.fingerprint_sha256,
                 "problems": [verification.describe(p) for p in check.problems]})


def watch(organization: Organization, *, address: str, port: int, sni_name: str = "",
          protocol: str = MonitoredEndpoint.Protocol.TLS) -> MonitoredEndpoint:
    """A new monitored endpoint, due at once; ValidationError naming the field
    for an address, port, name or protocol that is refused or already watched."""
    address = targets.normalize_address(address)
    if not 1 <= port <= 65535:
        raise ValidationError({"port": [_PORTS]})
    if protocol not in MonitoredEndpoint.Protocol.values:
        raise ValidationError({"protocol": [gettext("Choose TLS, SMTP, IMAP or POP3.")]})
    if sni_name:
        sni_name = targets.normalize_address(sni_name, field="sni_name")
    targets.check_allowed(address, port)
    endpoint, created = MonitoredEndpoint.objects.get_or_create(
        organization=organization, address=address, port=port, sni_name=sni_name,
        defaults={"protocol": protocol})
    if not created and endpoint.enabled:
        raise ValidationError({"address": [gettext("%(endpoint)s is monitored already.")
                                           % {"endpoint": endpoint}]})
    if not created:
        MonitoredEndpoint.objects.filter(pk=endpoint.pk).update(enabled=True, protocol=protocol)
        endpoint.enabled, endpoint.protocol = True, protocol
    return endpoint


def check(endpoint_id: int, *, now: datetime.datetime | None = None) -> EndpointCheck:
    """One endpoint checked now (a person's "check now", or a test)."""
    endpoint = MonitoredEndpoint.objects.get(pk=endpoint_id)
    observation = observe(endpoint.address, endpoint.port, endpoint.sni_name,
                          timeout=settings.ENDPOINT_CHECK_TIMEOUT, now=now,
                          protocol=endpoint.protocol)
    return record(endpoint_id, observation, now=now)


def claim_due(now: datetime.datetime, limit: int) -> list[MonitoredEndpoint]:
    """Due endpoints, their next check pushed out by a lease so that a second
    scan (another worker, the next minute) does not take them too."""
    lease = now + datetime.timedelta(seconds=max(settings.ENDPOINT_SCAN_SECONDS * 5, 300))
    with transaction.atomic():
        due = list(MonitoredEndpoint.objects.select_for_update(skip_locked=True)
                   .filter(enabled=True, next_check_at__lte=now)
                   .order_by("next_check_at")[:limit])
        MonitoredEndpoint.objects.filter(pk__in=[e.pk for e in due]).update(next_check_at=lease)
    return due


def check_due(*, now: datetime.datetime | None = None) -> int:
    """The beat's scan; how many endpoints were checked."""
    now = now or timezone.now()
    due = claim_due(now, settings.ENDPOINT_CHECKS_PER_SCAN)
    if not due:
        return 0
    timeout = settings.ENDPOINT_CHECK_TIMEOUT
    with ThreadPoolExecutor(max_workers=settings.ENDPOINT_CHECK_CONCURRENCY) as pool:
        observations = pool.map(
            lambda e: observe(e.address, e.port, e.sni_name, timeout=timeout, now=now,
                              protocol=e.protocol), due)
        for endpoint, observation in zip(due, observations, strict=True):
            record(endpoint.pk, observation, now=now)
    return len(due)
