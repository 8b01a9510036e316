"""Adoption: an imported or discovered certificate becomes a managed one.

The person chooses the CA account, the challenge and the hosts (the form of a
new certificate, filled from the row); the certificate they had becomes the
managed certificate's first version, so it stays in history, and the next
renewal is planned from its lifetime like any issued version's: before its
expiry, at once when less than that is left.
"""

import datetime

from django.db import transaction
from django.utils import timezone

from ..models import (
    Certificate,
    CertificateVersion,
    InventoryCertificate,
    KeyType,
    MonitoredEndpoint,
    TargetHost,
)
from ..renewal.policy import renewal_time_by_lifetime

KEY_TYPES = {("RSA", 2048): KeyType.RSA_2048, ("RSA", 3072): KeyType.RSA_3072,
             ("RSA", 4096): KeyType.RSA_4096, ("ECDSA secp256r1", 256): KeyType.EC_P256,
             ("ECDSA secp384r1", 384): KeyType.EC_P384}


def initial(row: InventoryCertificate) -> dict:
    """The new certificate's form, filled from where and what was found."""
    names = row.names()
    common_name = row.common_name or (names[0] if names else "")
    return {
        "common_name": common_name,
        "sans": [name for name in names if name != common_name],
        "key_type": KEY_TYPES.get((row.key_type, row.key_size), KeyType.EC_P256),
        "hosts": found_hosts(row),
        "auto_renew": True,
    }


def found_hosts(row: InventoryCertificate) -> list[int]:
    ids = [place["host_id"] for place in row.seen_at
           if isinstance(place, dict) and "host_id" in place]
    return list(TargetHost.objects.filter(organization=row.organization_id, pk__in=ids)
                .values_list("pk", flat=True))


def _fill_paths(row: InventoryCertificate, certificate: Certificate) -> None:
    """A host found holding the certificate in a file, with no certificate path
    of its own yet, gets that file's path: the renewal replaces what is there."""
    for place in row.seen_at:
        if not isinstance(place, dict) or "host_id" not in place:
            continue
        host = certificate.hosts.filter(pk=place["host_id"]).first()
        if host is None or host.certificate_path or host.fullchain_path:
            continue
        field = "fullchain_path" if "fullchain" in place["path"] else "certificate_path"
        setattr(host, field, place["path"])
        host.save(update_fields=[field])


def adopt(row: InventoryCertificate, certificate: Certificate, *,
          now: datetime.datetime | None = None) -> CertificateVersion:
    """`certificate` (saved by the person's form) takes `row` over: its first
    version, its renewal time, the endpoints that served it."""
    now = now or timezone.now()
    with transaction.atomic():
        version = CertificateVersion.from_pem(certificate=certificate, chain_pem=row.chain_pem,
                                              private_key_pem=row.private_key)
        version.save()
        certificate.current_version = version
        certificate.expires_at = version.not_after
        certificate.renew_after = max(renewal_time_by_lifetime(version), now)
        certificate.save(update_fields=["current_version", "expires_at", "renew_after",
                                        "updated_at"])
        _fill_paths(row, certificate)
        InventoryCertificate.objects.filter(pk=row.pk).update(adopted_as=certificate)
        MonitoredEndpoint.objects.filter(certificate=row).update(managed_certificate=certificate)
    return version
