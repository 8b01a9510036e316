"""`manage.py import_certificates PATH... --organization SLUG [--password PW]`:
import certificate files into an organisation's inventory.

A folder is read as one set (its certificate, chain and key files matched
together); files are picked by name (.pem .crt .cer .key .p12 .pfx). All or
nothing: a refused file stops the import before anything is written.
"""

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from accounts.models import Organization
from certificates.inventory import importing
from certificates.inventory.parsing import MAX_FILE_BYTES, ImportRefused

from ..local_times import local, organization_zone

SUFFIXES = {".pem", ".crt", ".cer", ".key", ".p12", ".pfx"}


def files_at(paths: list[str]) -> list[tuple[str, bytes]]:
    found: list[Path] = []
    for given in paths:
        path = Path(given)
        if path.is_dir():
            found += sorted(p for p in path.rglob("*")
                            if p.is_file() and p.suffix.lower() in SUFFIXES)
        elif path.is_file():
            found.append(path)
        else:
            raise CommandError(f"{given}: no such file or folder")
    big = [p for p in found if p.stat().st_size > MAX_FILE_BYTES]
    if big:
        raise CommandError(f"{big[0]} is larger than 1 MB: it is not a certificate file")
    return [(str(p), p.read_bytes()) for p in found]


class Command(BaseCommand):
    help = "Import certificate files (PEM, PKCS#12) into an organisation's inventory."

    def add_arguments(self, parser):
        parser.add_argument("paths", nargs="+", help="files or folders")
        parser.add_argument("--organization", required=True,
                            help="the organisation's short name (slug)")
        parser.add_argument("--password", default="",
                            help="for PKCS#12 files and encrypted private keys")

    def handle(self, *args, paths, organization, password="", **options):
        target = Organization.objects.filter(slug=organization).first()
        if target is None:
            raise CommandError(f"No organisation with the short name {organization!r}.")
        files = files_at(paths)
        try:
            result = importing.import_files(target, files, password=password)
        except ImportRefused as exc:
            raise CommandError(exc.message) from exc
        zone = organization_zone(target)
        for row in result.created:
            self.stdout.write(f"imported  {row} (expires "
                              f"{local(row.expires_at, zone):%Y-%m-%d} {zone.key})")
        for row in result.updated:
            self.stdout.write(f"known     {row}")
        self.stdout.write(f"{len(result.created)} imported, {len(result.updated)} already "
                          f"in the inventory, {len(result.managed)} issued by the portal.")
