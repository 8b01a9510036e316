"""Secrets at rest: a model field that stores its value encrypted with MultiFernet.

Keys come from FIELD_ENCRYPTION_KEYS (newest first): the first encrypts, every
one decrypts, so a key is rotated by putting a new one in front and running
`manage.py rotate_secrets`, which re-encrypts every stored secret with it.
"""

from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import models


@lru_cache(maxsize=4)
def _multi_fernet(keys: tuple[str, ...]) -> MultiFernet:
    try:
        return MultiFernet([Fernet(key.strip().encode()) for key in keys])
    except ValueError as exc:
        raise ImproperlyConfigured(
            "FIELD_ENCRYPTION_KEYS must be Fernet keys (32 url-safe base64-encoded "
            "bytes each), separated by commas."
        ) from exc


def fernet() -> MultiFernet:
    # Looked up on every call, so that tests can override the setting.
    return _multi_fernet(tuple(settings.FIELD_ENCRYPTION_KEYS))


def encrypt(plaintext: str) -> str:
    return fernet().encrypt(plaintext.encode()).decode("ascii")


def decrypt(token: str) -> str:
    return fernet().decrypt(token.encode("ascii")).decode()


class DecryptionError(ImproperlyConfigured):
    pass


class EncryptedTextField(models.TextField):
    """Text kept encrypted in the database and in serialised dumps.

    The Python value is the plaintext; the column holds a Fernet token. An
    empty value is stored empty (there is nothing to hide). Lookups other than
    `isnull`/exact-empty make no sense on ciphertext, which is non-deterministic.
    """

    description = "Text encrypted at rest"

    def get_prep_value(self, value):
        value = super().get_prep_value(value)
        if value in (None, ""):
            return value
        return encrypt(value)

    def from_db_value(self, value, expression, connection):
        if value in (None, ""):
            return value
        try:
            return decrypt(value)
        except InvalidToken as exc:
            raise DecryptionError(
                f"{self.model.__name__}.{self.name} cannot be decrypted with any key "
                "in FIELD_ENCRYPTION_KEYS; was a key removed before `rotate_secrets` ran?"
            ) from exc

    def to_python(self, value):
        # loaddata hands us the ciphertext that value_to_string() wrote.
        if isinstance(value, str) and value.startswith("gAAAAA"):
            try:
                return decrypt(value)
            except InvalidToken:
                pass
        return value

    def value_to_string(self, obj):
        # dumpdata must not write the plaintext out.
        value = self.value_from_object(obj)
        return encrypt(value) if value else value
