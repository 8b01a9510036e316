"""Import: files read by `parsing`, stored as unmanaged certificates.

All or nothing: every file is read before anything is written, and the rows
are written in one transaction, so a refused file leaves the inventory as it
was. A leaf already in the inventory is kept once (its places and a key it
lacked are added); a leaf the portal issued itself is managed already and is
left alone.
"""

from dataclasses import dataclass, field

from django.db import transaction

from accounts.models import Organization, User

from ..models import CertificateVersion, InventoryCertificate, Source
from .parsing import Leaf, read_files


@dataclass
class Imported:
    created: list[InventoryCertificate] = field(default_factory=list)
    updated: list[InventoryCertificate] = field(default_factory=list)
    managed: list[str] = field(default_factory=list)  # fingerprints issued here

    @property
    def rows(self) -> list[InventoryCertificate]:
        return self.created + self.updated


def _places(row: InventoryCertificate, place: dict) -> None:
    if place not in row.seen_at:
        row.seen_at = [*row.seen_at, place]


def _where(leaf: Leaf, place: dict | None,
           places_of: dict[str, list[dict]] | None) -> list[dict]:
    if place:
        return [place]
    if places_of is not None:
        return places_of.get(leaf.fingerprint, [])
    return [{"file": origin} for origin in leaf.origins or [leaf.origin]]


def store(organization: Organization, leaves: list[Leaf], *, by: User | None = None,
          source: str = Source.IMPORTED,
          place: dict | None = None, places_of: dict[str, list[dict]] | None = None,
          status: str = InventoryCertificate.Status.ACCEPTED) -> Imported:
    """Rows for `leaves` in `organization`, in one transaction. `place` overrides
    where each was seen (an endpoint, a path on a host), `places_of` gives each
    leaf's places by fingerprint; else its files' names.
    A row found before and not dismissed takes the new `status` when it is
    ACCEPTED (a person imported it, or asked to watch where it is served)."""
    result = Imported()
    prints = [leaf.fingerprint for leaf in leaves]
    managed = set(CertificateVersion.objects.filter(
        certificate__organization=organization, fingerprint_sha256__in=prints,
    ).values_list("fingerprint_sha256", flat=True))
    with transaction.atomic():
        existing = {row.fingerprint_sha256: row for row in InventoryCertificate.objects
                    .select_for_update().filter(organization=organization,
                                                fingerprint_sha256__in=prints)}
        for leaf in leaves:
            if leaf.fingerprint in managed:
                result.managed.append(leaf.fingerprint)
                continue
            row = existing.get(leaf.fingerprint)
            if row is None:
                row = InventoryCertificate(organization=organization, source=source,
                                           status=status, created_by=by, **leaf.details())
                result.created.append(row)
            else:
                if status == InventoryCertificate.Status.ACCEPTED:
                    row.status = status
                result.updated.append(row)
            for where in _where(leaf, place, places_of):
                _places(row, where)
            if leaf.private_key_pem and not row.private_key:
                row.private_key = leaf.private_key_pem
            if row.pk is not None:
                row.save()
        # One INSERT for every new row: a discovery scan finds hundreds at once.
        InventoryCertificate.objects.bulk_create(result.created, batch_size=500)
    return result


def import_files(organization: Organization, files: list[tuple[str, bytes]], *,
                 password: str = "", by: User | None = None) -> Imported:
    """Reads `files` ((name, content) pairs) and stores every leaf; raises
    `parsing.ImportRefused` before writing anything when a file is refused."""
    return store(organization, read_files(files, password=password), by=by)
