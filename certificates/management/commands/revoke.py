"""`manage.py revoke <certificate id or common name> [--version-id ID] [--reason R]
[--force] [--with-certificate-key]`: revoke a version (the current one unless
--version-id) at its CA. A version still served is refused unless --force with
--reason keyCompromise, which also starts its replacement. Recorded in the
audit log, with no person (a shell on the portal's machine is an operator's)."""

from django.core.management.base import BaseCommand, CommandError

from certificates.models import CertificateVersion
from certificates.renewal import revocation

from .renew import find_certificate

REASONS = {"unspecified": 0, "keyCompromise": 1, "affiliationChanged": 3, "superseded": 4,
           "cessationOfOperation": 5}


class Command(BaseCommand):
    help = "Revoke a certificate version at its CA (ACME revokeCert)."

    def add_arguments(self, parser):
        parser.add_argument("certificate", help="certificate id or common name")
        parser.add_argument("--version-id", type=int, dest="version_id",
                            help="the version's id (default: the current version)")
        parser.add_argument("--reason", choices=sorted(REASONS), default="unspecified")
        parser.add_argument("--force", action="store_true",
                            help="revoke although hosts still serve it (keyCompromise only); "
                                 "its replacement starts at once")
        parser.add_argument("--with-certificate-key", action="store_true",
                            help="sign with the certificate's own key rather than the account's")

    def handle(self, *args, certificate, version_id=None, reason="unspecified", force=False,
               with_certificate_key=False, **options):
        target = find_certificate(certificate)
        version_id = version_id or target.current_version_id
        if not version_id or not CertificateVersion.objects.filter(
                certificate=target, pk=version_id).exists():
            raise CommandError(f"{target.common_name} has no such issued version.")
        try:
            done = revocation.revoke_version(
                version_id=version_id, reason=REASONS[reason], force=force,
                with_certificate_key=with_certificate_key)
        except revocation.RevocationRefused as exc:
            raise CommandError(str(exc)) from exc
        version = done.version
        self.stdout.write(self.style.SUCCESS(
            f"Revoked serial {version.serial_hex} of {target.common_name} ({reason}), "
            f"signed with {version.get_revocation_signed_by_display()}."))
        if done.replacement is not None:
            self.stdout.write(f"Replacement run {done.replacement.pk} started.")
