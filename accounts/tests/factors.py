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
    if at is None:
        # A code read in the last seconds of its 30-second period may reach the
        # server in the next one, where it is no longer valid (no tolerance is
        # allowed): a person would wait for the next code, and so does a test.
        left = 30 - time.time() % 30
        if left < 5:
            time.sleep(left + 0.1)
    counter = int((at or time.time()) // 30) + step
    return format_hotp_value(hotp_value(secret, counter))


def reauthenticate(client, user):
    """Enter the password again, as a person asked to re-authenticate does."""
    response = client.post(reverse("account_reauthenticate"), {"password": f"pw-{user.username}"})
    assert response.status_code == 302, response.content.decode()[:2000]
    return response


_codes_given = set()


def second_factor(user) -> str:
    """What a person types at the second step: the app's code, or, when this
    period's code was already used (a TOTP code is good once), a recovery code."""
    secret = totp_secret(user)
    code = totp_code(secret)
    if (secret, code) not in _codes_given:
        _codes_given.add((secret, code))
        return code
    authenticator = Authenticator.objects.get(user=user, type=Authenticator.Type.RECOVERY_CODES)
    return RecoveryCodes(authenticator).get_unused_codes()[0]
