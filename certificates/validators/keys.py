"""PEM certificate chains and TLS private keys (SSH keys: ssh_keys.py)."""

from __future__ import annotations

import re

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _

from ._common import _as_text

MIN_RSA_BITS = 2048

# Default field names that start each message when the caller passes no
# ``label``; named constants rather than calls in the signatures (ruff B008).
CERTIFICATE_CHAIN_LABEL = _("Certificate chain")
PRIVATE_KEY_LABEL = _("Private key")

_PEM_BLOCK_RE = re.compile(r"-----BEGIN ([A-Z0-9 ]+)-----\n.*?-----END \1-----", re.DOTALL)


def _normalise_pem_text(value) -> str:
    # Browsers submit textareas with CRLF and mail clients indent pasted
    # text; neither changes the PEM content.
    return "\n".join(line.strip() for line in _as_text(value).splitlines()).strip()


def _pem_blocks(text: str) -> tuple[list[tuple[str, str]], bool]:
    """Return [(type, block text)] and whether every BEGIN line had its END."""
    blocks = [(m.group(1), m.group(0)) for m in _PEM_BLOCK_RE.finditer(text)]
    return blocks, text.count("-----BEGIN ") == len(blocks)


def validate_certificate_chain_pem(
    value, *, label=CERTIFICATE_CHAIN_LABEL
) -> list[x509.Certificate]:
    """Return the certificates of a PEM chain, in the order given."""
    blocks, complete = _pem_blocks(_normalise_pem_text(value))
    params = {"field": label}

    if not complete:
        raise ValidationError(
            _(
                "%(field)s contains an incomplete PEM block: every -----BEGIN "
                "CERTIFICATE----- line needs its -----END CERTIFICATE----- "
                "line; paste PEM text beginning with -----BEGIN "
                "CERTIFICATE-----."
            ),
            code="incomplete_pem",
            params=params,
        )
    if not blocks:
        raise ValidationError(
            _(
                "%(field)s must contain at least one certificate: paste PEM "
                "text beginning with -----BEGIN CERTIFICATE-----."
            ),
            code="no_certificate",
            params=params,
        )
    # A key pasted here would be stored as public data; refuse it loudly.
    if any(kind.endswith("PRIVATE KEY") for kind, _block in blocks):
        raise ValidationError(
            _(
                "%(field)s must not contain a private key: put the key in its "
                "own field, and paste here only PEM text beginning with "
                "-----BEGIN CERTIFICATE-----."
            ),
            code="contains_private_key",
            params=params,
        )

    certificates = []
    for index, (kind, block) in enumerate(blocks, start=1):
        block_params = {**params, "index": index, "kind": kind}
        if kind != "CERTIFICATE":
            raise ValidationError(
                _(
                    "%(field)s may contain only certificates, but block "
                    "%(index)s is “%(kind)s”: paste PEM text beginning with "
                    "-----BEGIN CERTIFICATE-----."
                ),
                code="unexpected_pem_block",
                params=block_params,
            )
        try:
            certificates.append(x509.load_pem_x509_certificate(block.encode("ascii")))
        except ValueError:  # includes UnicodeEncodeError from mangled paste
            raise ValidationError(
                _(
                    "%(field)s: certificate %(index)s is not a valid X.509 "
                    "certificate; paste PEM text beginning with -----BEGIN "
                    "CERTIFICATE----- exactly as issued."
                ),
                code="invalid_certificate",
                params=block_params,
            ) from None
    return certificates


def validate_private_key_pem(value, *, label=PRIVATE_KEY_LABEL):
    """Return the cryptography private key object of an unencrypted PEM key."""
    text = _normalise_pem_text(value)
    blocks, complete = _pem_blocks(text)
    params = {"field": label}

    encrypted = ValidationError(
        _(
            "%(field)s must not be protected by a passphrase: paste the "
            "unencrypted PEM key (for example the output of “openssl pkey "
            "-in KEYFILE”)."
        ),
        code="encrypted",
        params=params,
    )

    if _is_encrypted_pem(text, blocks):
        raise encrypted
    if not complete or [kind for kind, _block in blocks] not in (
        ["PRIVATE KEY"],
        ["RSA PRIVATE KEY"],
        ["EC PRIVATE KEY"],
    ):
        raise ValidationError(
            _(
                "%(field)s must be exactly one unencrypted PEM private key "
                "beginning with -----BEGIN PRIVATE KEY----- (PKCS#8), "
                "-----BEGIN RSA PRIVATE KEY----- or -----BEGIN EC PRIVATE "
                "KEY-----, and nothing else."
            ),
            code="not_pem_private_key",
            params=params,
        )
    try:
        key = serialization.load_pem_private_key(blocks[0][1].encode("ascii"), password=None)
    except TypeError:  # cryptography's way of saying "encrypted"
        raise encrypted from None
    except (ValueError, UnsupportedAlgorithm):
        raise ValidationError(
            _(
                "%(field)s could not be read as a private key: paste the whole "
                "unencrypted PEM key, including its -----BEGIN and -----END "
                "lines, unchanged."
            ),
            code="invalid_private_key",
            params=params,
        ) from None

    allowed = (
        (isinstance(key, rsa.RSAPrivateKey) and key.key_size >= MIN_RSA_BITS)
        or (
            isinstance(key, ec.EllipticCurvePrivateKey)
            and key.curve.name in ("secp256r1", "secp384r1")
        )
        or isinstance(key, ed25519.Ed25519PrivateKey)
    )
    if not allowed:
        raise ValidationError(
            _(
                "%(field)s is a %(key_type)s key, which is not allowed: use "
                "RSA with at least 2048 bits, ECDSA on P-256 or P-384, or "
                "Ed25519."
            ),
            code="unsupported_key_type",
            params={**params, "key_type": _describe_key(key)},
        )
    return key


def _is_encrypted_pem(text: str, blocks) -> bool:
    # PKCS#8 encryption has its own block type; traditional OpenSSL keys
    # announce it in a header. Checked up front for a clear message before
    # any parsing error could mask it.
    return "Proc-Type: 4,ENCRYPTED" in text or any(
        kind == "ENCRYPTED PRIVATE KEY" for kind, _block in blocks
    )


def _describe_key(key) -> str:
    if isinstance(key, rsa.RSAPrivateKey):
        return f"RSA {key.key_size}-bit"
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return f"ECDSA {key.curve.name}"
    return type(key).__name__.lstrip("_").removesuffix("PrivateKey") or "unknown"
