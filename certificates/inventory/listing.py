"""One inventory: managed and unmanaged certificates in one list and one export.

The list is a UNION of two narrow SELECTs (managed certificates with their
current version's issuer; unmanaged rows not adopted), sorted and sliced in the
database, so a page costs the same two queries whatever the size of either
side. The export streams every row with the columns an auditor asks for; what
it adds per row (hosts, endpoints, signature algorithm) is fetched in one query
per chunk, never per row.
"""

import datetime
from collections import defaultdict
from collections.abc import Iterator
from typing import Any

from cryptography import x509
from django.db.models import Count, Exists, F, Max, OuterRef, Q, QuerySet, Value
from django.db.models.fields import CharField

from accounts.models import Organization

from ..models import (
    Certificate,
    Deployment,
    InventoryCertificate,
    MonitoredEndpoint,
    Source,
)
from ..models.inventory import place_label
from .parsing import signature_name

# The source filter's value for "imported or discovered".
ELSEWHERE = "elsewhere"
COLUMNS = ["pk", "source", "common_name", "issuer", "expires_at"]
SORTS = {
    "expires": (F("expires_at").asc(nulls_last=True), "common_name"),
    "-expires": (F("expires_at").desc(nulls_last=True), "common_name"),
    "name": ("common_name", "expires_at"),
    "-name": ("-common_name", "expires_at"),
}
EXPORT_FIELDS = [
    "managed", "source", "common_name", "names", "issuer", "serial", "not_before",
    "not_after", "key_type", "key_size", "signature_algorithm", "fingerprint_sha256",
    "deployed_or_served_at", "last_check",
]
CHUNK = 1000
# The managed key types as an auditor reads them: (algorithm, size in bits).
MANAGED_KEYS = {
    "ec-p256": ("ECDSA secp256r1", 256), "ec-p384": ("ECDSA secp384r1", 384),
    "rsa-2048": ("RSA", 2048), "rsa-3072": ("RSA", 3072), "rsa-4096": ("RSA", 4096),
}


def managed_of(organization: Organization) -> QuerySet:
    return Certificate.objects.filter(organization=organization)


def unmanaged_of(organization: Organization) -> QuerySet:
    return InventoryCertificate.objects.filter(organization=organization).filter(
        InventoryCertificate.unadopted())


def _narrow(managed: QuerySet, unmanaged: QuerySet, *, search: str, issuer: str,
            expires_by: datetime.datetime | None) -> tuple[QuerySet, QuerySet]:
    managed = managed.annotate(issuer=F("current_version__issuer"))
    if search:
        managed = managed.filter(Q(common_name__icontains=search) | Q(sans__icontains=search))
        unmanaged = unmanaged.filter(Q(common_name__icontains=search)
                                     | Q(sans__icontains=search))
    if issuer:
        managed = managed.filter(issuer__icontains=issuer)
        unmanaged = unmanaged.filter(issuer__icontains=issuer)
    if expires_by is not None:
        managed = managed.filter(expires_at__lte=expires_by)
        unmanaged = unmanaged.filter(expires_at__lte=expires_by)
    return managed, unmanaged


def _served_with(managed: QuerySet, unmanaged: QuerySet,
                 result: str) -> tuple[QuerySet, QuerySet]:
    """Certificates served at a monitored endpoint whose last check had `result`."""
    endpoints = MonitoredEndpoint.objects.filter(result=result)
    return (managed.filter(Exists(endpoints.filter(managed_certificate=OuterRef("pk")))),
            unmanaged.filter(Exists(endpoints.filter(certificate=OuterRef("pk")))))


def unified(organization: Organization, *, source: str = "", search: str = "",
            issuer: str = "", expires_by: datetime.datetime | None = None,
            endpoint_result: str = "", sort: str = "expires") -> QuerySet:
    """Dicts of COLUMNS for every certificate of `organization` that matches."""
    managed, unmanaged = _narrow(managed_of(organization), unmanaged_of(organization),
                                 search=search, issuer=issuer, expires_by=expires_by)
    if endpoint_result in MonitoredEndpoint.Result.values:
        managed, unmanaged = _served_with(managed, unmanaged, endpoint_result)
    managed = managed.annotate(source=Value(Source.ISSUED.value, output_field=CharField()))
    if source == Source.ISSUED:
        unmanaged = unmanaged.none()
    elif source == ELSEWHERE:
        managed = managed.none()
    elif source in (Source.IMPORTED, Source.DISCOVERED):
        managed = managed.none()
        unmanaged = unmanaged.filter(source=source)
    both = (managed.order_by().values(*COLUMNS)
            .union(unmanaged.order_by().values(*COLUMNS), all=True))
    return both.order_by(*SORTS.get(sort, SORTS["expires"]))


def counts(organization: Organization, now: datetime.datetime, *, expiring_days: int,
           horizon: datetime.datetime) -> dict[str, Any]:
    """Unmanaged certificates in all, expired, expiring soon and beyond the
    timeline's horizon, and the latest expiry: one query."""
    return unmanaged_of(organization).aggregate(
        total=Count("pk"),
        expired=Count("pk", filter=Q(expires_at__lte=now)),
        expiring=Count("pk", filter=Q(expires_at__gt=now,
                                      expires_at__lte=now + datetime.timedelta(
                                          days=expiring_days))),
        imported=Count("pk", filter=Q(source=Source.IMPORTED)),
        discovered=Count("pk", filter=Q(source=Source.DISCOVERED)),
        later=Count("pk", filter=Q(expires_at__gt=horizon)),
        latest=Max("expires_at"),
    )


def _chunks(queryset: QuerySet) -> Iterator[list]:
    chunk = []
    for row in queryset.iterator(chunk_size=CHUNK):
        chunk.append(row)
        if len(chunk) == CHUNK:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _managed_rows(organization: Organization) -> Iterator[dict]:
    queryset = managed_of(organization).select_related("current_version").order_by("pk")
    for chunk in _chunks(queryset):
        hosts = defaultdict(list)
        checked: dict[int, datetime.datetime] = {}
        for certificate_id, name, at in Deployment.objects.filter(
                certificate__in=[c.pk for c in chunk]).order_by("host__name").values_list(
                "certificate_id", "host__name", "last_checked_at"):
            hosts[certificate_id].append(name)
            if at and (certificate_id not in checked or at > checked[certificate_id]):
                checked[certificate_id] = at
        for certificate in chunk:
            yield _managed_row(certificate, hosts[certificate.pk], checked.get(certificate.pk))


def _managed_row(certificate: Certificate, hosts: list[str],
                 checked: datetime.datetime | None) -> dict:
    version = certificate.current_version
    key_type, key_size = MANAGED_KEYS.get(certificate.key_type, (certificate.key_type, 0))
    signature = ""
    if version is not None:
        signature = signature_name(x509.load_pem_x509_certificate(version.leaf_pem().encode()))
    return {
        "managed": True, "source": Source.ISSUED.value,
        "common_name": certificate.common_name, "names": certificate.names(),
        "issuer": version.issuer if version else "",
        "serial": version.serial_hex if version else "",
        "not_before": version.not_before if version else None,
        "not_after": certificate.expires_at, "key_type": key_type, "key_size": key_size,
        "signature_algorithm": signature,
        "fingerprint_sha256": version.fingerprint_sha256 if version else "",
        "deployed_or_served_at": hosts, "last_check": checked,
    }


def _unmanaged_rows(organization: Organization) -> Iterator[dict]:
    queryset = unmanaged_of(organization).defer("private_key", "chain_pem").order_by("pk")
    for chunk in _chunks(queryset):
        served = defaultdict(list)
        for endpoint in MonitoredEndpoint.objects.filter(
                certificate__in=[row.pk for row in chunk]).order_by("address", "port"):
            served[endpoint.certificate_id].append(endpoint)
        last = dict(MonitoredEndpoint.objects.filter(certificate__in=[row.pk for row in chunk])
                    .values("certificate_id").annotate(at=Max("last_checked_at"))
                    .values_list("certificate_id", "at"))
        for row in chunk:
            places = [place_label(place) for place in row.seen_at]
            places += [str(e) for e in served[row.pk] if str(e) not in places]
            yield {
                "managed": False, "source": row.source, "common_name": row.common_name,
                "names": row.names(), "issuer": row.issuer, "serial": row.serial,
                "not_before": row.not_before, "not_after": row.expires_at,
                "key_type": row.key_type, "key_size": row.key_size,
                "signature_algorithm": row.signature_algorithm,
                "fingerprint_sha256": row.fingerprint_sha256,
                "deployed_or_served_at": places, "last_check": last.get(row.pk),
            }


def export_rows(organization: Organization) -> Iterator[dict]:
    """Every certificate of `organization`, managed first, as EXPORT_FIELDS."""
    yield from _managed_rows(organization)
    yield from _unmanaged_rows(organization)
