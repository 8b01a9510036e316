"""What a deposit ledger line refers to, as links a person can follow.

A ledger reference is a key that makes money move once ("charge:version:42",
"topup:<uuid>", deposit.py); people want what it stands for: the certificate
version charged for and the run that issued it, or the top-up's note.
"""

from dataclasses import dataclass

from django.urls import reverse

from ..models import CertificateVersion, RenewalRun

CHARGE_PREFIX = "charge:version:"


@dataclass(frozen=True)
class Reference:
    text: str
    url: str = ""
    run_id: int | None = None
    run_url: str = ""


def _version_id(reference: str) -> int | None:
    key = reference.removeprefix(CHARGE_PREFIX)
    return int(key) if reference.startswith(CHARGE_PREFIX) and key.isdigit() else None


def with_references(entries):
    """Sets `.referent` (a Reference, or None) on each entry of a page; two
    queries however many entries."""
    entries = list(entries)
    version_ids = {_version_id(entry.reference) for entry in entries} - {None}
    versions = CertificateVersion.objects.select_related("certificate").in_bulk(version_ids)
    runs = dict(RenewalRun.objects.filter(version_id__in=version_ids)
                .order_by("version_id", "pk").values_list("version_id", "pk"))
    for entry in entries:
        entry.referent = None
        version = versions.get(_version_id(entry.reference))
        if version is None:
            continue  # the certificate was deleted: the note says what it was
        run_id = runs.get(version.pk)
        entry.referent = Reference(
            text=f"{version.certificate.common_name} · {version.serial_hex}",
            url=reverse("certificates:certificate", args=[version.certificate_id])
            + f"#version-{version.pk}",
            run_id=run_id, run_url=reverse("certificates:run", args=[run_id]) if run_id else "")
    return entries
