"""Re-encrypts every stored secret with the first key of FIELD_ENCRYPTION_KEYS.

Rotation: put the new key first in FIELD_ENCRYPTION_KEYS (keep the old one
after it), restart, run this command, then drop the old key.
"""

from django.apps import apps
from django.core.management.base import BaseCommand
from django.db import transaction

from fujissl_portal.encryption import EncryptedTextField


class Command(BaseCommand):
    help = "Re-encrypt every stored secret with the newest encryption key."

    def handle(self, *args, **options):
        for model in apps.get_models():
            fields = [f.name for f in model._meta.concrete_fields
                      if isinstance(f, EncryptedTextField)]
            if not fields:
                continue
            count = 0
            # Reading decrypts with any key; saving encrypts with the first.
            with transaction.atomic():
                for obj in model._default_manager.only("pk", *fields).iterator(chunk_size=500):
                    model._default_manager.filter(pk=obj.pk).update(
                        **{name: getattr(obj, name) for name in fields}
                    )
                    count += 1
            self.stdout.write(f"{model._meta.label}: {count} rows re-encrypted")
        self._rotate_totp_secrets()

    def _rotate_totp_secrets(self):
        """TOTP secrets sit encrypted inside the authenticators' JSON data."""
        from allauth.mfa.models import Authenticator

        from fujissl_portal.encryption import fernet

        count = 0
        with transaction.atomic():
            for authenticator in Authenticator.objects.filter(type=Authenticator.Type.TOTP):
                data = dict(authenticator.data)
                data["secret"] = fernet().rotate(data["secret"].encode("ascii")).decode("ascii")
                Authenticator.objects.filter(pk=authenticator.pk).update(data=data)
                count += 1
        self.stdout.write(f"mfa.Authenticator (TOTP): {count} rows re-encrypted")
