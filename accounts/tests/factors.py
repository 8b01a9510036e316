"""Builders for sign-in tests: a person's TOTP factor, its current code, and a
re-authentication through the real form."""

import time

from allauth.mfa.models import Authenticator
from allauth.mfa.recovery_codes.internal.auth import RecoveryCodes
from allauth.mfa.totp.internal.auth import TOTP, format_hotp_value, generate_totp_secret, hotp_value
from django.urls import reverse

from fujissl_portal import encryption


def give_totp(user) -> str:
    """An authenticator app for `user`, with recovery codes, as set-up makes them;
    returns the TOTP secret."""
    secret = generate_totp_secret()
    TOTP.activate(user, secret)
    RecoveryCodes.activate(user)
    return secret


def totp_secret(user) -> str:
    authenticator = Authenticator.objects.get(user=user, type=Authenticator.Type.TOTP)
    return encryption.decrypt(authenticator.data["secret"])


def totp_code(secret: str, *, at=None, step=0) -> str:
    """The code an authenticator app shows `step` periods from `at` (now)."""
    counter = int((at or time.time()) // 30) + step
    return format_hotp_value(hotp_value(secret, counter))


def reauthenticate(client, user):
    """Enter the password again, as a person asked to re-authenticate does."""
    response = client.post(reverse("account_reauthenticate"), {"password": f"pw-{user.username}"})
    assert response.status_code == 302, response.content.decode()[:2000]
    return response
