"""DNS-01 via RFC 2136 dynamic updates: TSIG secret and algorithm."""

from __future__ import annotations

import base64

from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _

from ._common import _as_text, _display

# Preferred first, so the tuple can be used directly to build form choices.
TSIG_ALGORITHMS = (
    "hmac-sha256",
    "hmac-sha384",
    "hmac-sha512",
    "hmac-sha224",
    "hmac-sha1",
    "hmac-md5",
)
MIN_TSIG_SECRET_BYTES = 16

# Default field names that start each message when the caller passes no
# ``label``; named constants rather than calls in the signatures (ruff B008).
TSIG_SECRET_LABEL = _("TSIG secret")
TSIG_ALGORITHM_LABEL = _("TSIG algorithm")


def validate_tsig_secret(value, *, label=TSIG_SECRET_LABEL) -> str:
    """Return the secret's base64 text with any whitespace removed."""
    text = "".join(_as_text(value).split())
    params = {"field": label, "minimum": MIN_TSIG_SECRET_BYTES}
    try:
        secret = base64.b64decode(text, validate=True)
        # Only the canonical spelling: b64decode tolerates stray padding, and
        # a secret that does not round-trip was mangled on its way here.
        if base64.b64encode(secret).decode("ascii") != text:
            raise ValueError("not canonical base64")
    except ValueError:  # includes binascii.Error and non-ASCII input
        raise ValidationError(
            _(
                "%(field)s must be base64 text, as printed by “tsig-keygen”, "
                "that decodes to at least %(minimum)s bytes."
            ),
            code="invalid_base64",
            params=params,
        ) from None
    if len(secret) < MIN_TSIG_SECRET_BYTES:
        raise ValidationError(
            _(
                "%(field)s is too short: it decodes to %(length)s bytes, but at "
                "least %(minimum)s bytes are required; generate one with "
                "“tsig-keygen”."
            ),
            code="too_short",
            params={**params, "length": len(secret)},
        )
    return text


def validate_tsig_algorithm(value, *, label=TSIG_ALGORITHM_LABEL) -> str:
    """Return the algorithm's short name from ``TSIG_ALGORITHMS``.

    Case, surrounding space and the trailing dot of DNS-name spelling
    ("hmac-sha256.") are tolerated, and so is the historic long name of
    HMAC-MD5 ("hmac-md5.sig-alg.reg.int"), as BIND and dnspython print them.
    """
    text = _as_text(value).strip()
    name = text.lower().rstrip(".")
    if name == "hmac-md5.sig-alg.reg.int":
        name = "hmac-md5"
    if name not in TSIG_ALGORITHMS:
        raise ValidationError(
            _("%(field)s “%(value)s” is not supported: choose one of %(allowed)s."),
            code="unsupported_algorithm",
            params={"field": label, "value": _display(text), "allowed": ", ".join(TSIG_ALGORITHMS)},
        )
    return name
