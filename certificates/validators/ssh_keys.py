"""SSH keys: a deploy login's private key, a host's public key and its
fingerprint."""

from __future__ import annotations

import base64
import hashlib
import io

import paramiko
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _

from ._common import _as_text, _display
from .keys import MIN_RSA_BITS, _describe_key, _is_encrypted_pem, _normalise_pem_text, _pem_blocks

# Host/deploy key types that both OpenSSH and paramiko accept. ssh-dss is gone
# from both; certificates and security-key (sk-) types are not host keys.
SSH_PUBLIC_KEY_TYPES = (
    "ssh-ed25519",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "ssh-rsa",
)

# Default field names that start each message when the caller passes no
# ``label``; named constants rather than calls in the signatures (ruff B008).
SSH_PRIVATE_KEY_LABEL = _("SSH private key")
SSH_PUBLIC_KEY_LABEL = _("SSH public key")

_SSH_PRIVATE_KEY_BLOCKS = (
    "OPENSSH PRIVATE KEY",
    "PRIVATE KEY",
    "RSA PRIVATE KEY",
    "EC PRIVATE KEY",
)
_SSH_ECDSA_CURVES = ("secp256r1", "secp384r1", "secp521r1")


def validate_ssh_private_key(value, *, label=SSH_PRIVATE_KEY_LABEL) -> paramiko.PKey:
    """Return a paramiko key for an unencrypted Ed25519, ECDSA or RSA key.

    Accepts the OpenSSH format ("-----BEGIN OPENSSH PRIVATE KEY-----") and
    PEM (PKCS#8 or traditional RSA/EC).
    """
    text = _normalise_pem_text(value)
    blocks, complete = _pem_blocks(text)
    params = {"field": label}
    encrypted = ValidationError(
        _(
            "%(field)s must not be protected by a passphrase: the portal uses "
            "the key unattended, so paste an unencrypted key (remove the "
            "passphrase with “ssh-keygen -p”, or create a dedicated deploy "
            "key)."
        ),
        code="encrypted",
        params=params,
    )
    not_a_key = ValidationError(
        _(
            "%(field)s must be exactly one private key beginning with "
            "-----BEGIN OPENSSH PRIVATE KEY----- (as written by ssh-keygen) "
            "or a PEM private key (-----BEGIN PRIVATE KEY-----, -----BEGIN "
            "RSA PRIVATE KEY----- or -----BEGIN EC PRIVATE KEY-----)."
        ),
        code="not_ssh_private_key",
        params=params,
    )

    _refuse_mix_ups(text, params)
    if _is_encrypted_pem(text, blocks):
        raise encrypted
    if not complete or len(blocks) != 1 or blocks[0][0] not in _SSH_PRIVATE_KEY_BLOCKS:
        raise not_a_key

    kind, block = blocks[0]
    data = block.encode("ascii", errors="replace")
    try:
        if kind == "OPENSSH PRIVATE KEY":
            key = serialization.load_ssh_private_key(data, password=None)
        else:
            key = serialization.load_pem_private_key(data, password=None)
    except TypeError:  # cryptography's way of saying "encrypted"
        raise encrypted from None
    except (ValueError, UnsupportedAlgorithm):
        raise not_a_key from None

    key_class = _paramiko_class(key, params)
    # paramiko reads Ed25519 only in OpenSSH format and EC only as
    # "EC PRIVATE KEY"; re-serialising to OpenSSH format gives every accepted
    # input one path into paramiko.
    openssh_text = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.OpenSSH,
        serialization.NoEncryption(),
    ).decode("ascii")
    try:
        return key_class.from_private_key(io.StringIO(openssh_text))
    except (paramiko.SSHException, ValueError):  # pragma: no cover - defensive
        raise not_a_key from None


def _refuse_mix_ups(text, params) -> None:
    """Two common mix-ups deserve a message of their own: a PuTTY key, a public key."""
    if text.startswith("PuTTY-User-Key-File"):
        raise ValidationError(
            _(
                "%(field)s is in PuTTY (.ppk) format, which is not supported: "
                "export it from PuTTYgen with “Conversions → Export OpenSSH "
                "key” and paste that."
            ),
            code="putty_format",
            params=params,
        )
    if text.split(None, 1)[:1] and text.split(None, 1)[0] in SSH_PUBLIC_KEY_TYPES:
        raise ValidationError(
            _(
                "%(field)s looks like a public key: paste the private key (the "
                "file without “.pub”), beginning with -----BEGIN OPENSSH "
                "PRIVATE KEY-----."
            ),
            code="public_key_given",
            params=params,
        )


def _paramiko_class(key, params) -> type[paramiko.PKey]:
    """The paramiko class for a key of a type SSH logins accept, else a ValidationError."""
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return paramiko.Ed25519Key
    if isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.name in _SSH_ECDSA_CURVES:
        return paramiko.ECDSAKey
    if isinstance(key, rsa.RSAPrivateKey) and key.key_size >= MIN_RSA_BITS:
        return paramiko.RSAKey
    raise ValidationError(
        _(
            "%(field)s is a %(key_type)s key, which is not supported: use "
            "Ed25519, ECDSA (nistp256, nistp384 or nistp521) or RSA with "
            "at least 2048 bits."
        ),
        code="unsupported_key_type",
        params={**params, "key_type": _describe_key(key)},
    )


def validate_ssh_public_key(value, *, label=SSH_PUBLIC_KEY_LABEL) -> tuple[str, str]:
    """Return (key_type, base64) of one public key line.

    Accepts the .pub form "ssh-ed25519 AAAA… [comment]" and, so that
    ssh-keyscan output can be pasted, a known_hosts line with a leading host
    field (which is ignored). The base64 is returned in canonical form.
    """
    params = {"field": label, "allowed": ", ".join(SSH_PUBLIC_KEY_TYPES)}
    invalid_format = ValidationError(
        _(
            "%(field)s must be exactly one line of the form “ssh-ed25519 "
            "AAAA… [comment]”, as in a .pub file or ssh-keyscan output."
        ),
        code="invalid_format",
        params=params,
    )

    lines = [
        line.strip()
        for line in _as_text(value).splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    if len(lines) != 1:
        raise invalid_format
    fields = lines[0].split()
    if (
        len(fields) >= 3
        and fields[0] not in SSH_PUBLIC_KEY_TYPES
        and fields[1] in SSH_PUBLIC_KEY_TYPES
    ):
        fields = fields[1:]  # known_hosts: "host[,host…] type base64"
    if len(fields) < 2:
        raise invalid_format

    key_type, encoded = fields[0], fields[1]
    params["key_type"] = _display(key_type)
    if key_type not in SSH_PUBLIC_KEY_TYPES:
        if not encoded.startswith("AAAA"):
            raise invalid_format
        raise ValidationError(
            _(
                "%(field)s has key type “%(key_type)s”, which is not supported: "
                "use one of %(allowed)s."
            ),
            code="unsupported_key_type",
            params=params,
        )
    invalid_data = ValidationError(
        _(
            "%(field)s: the data after “%(key_type)s” is not a valid "
            "%(key_type)s public key; copy the whole line unchanged."
        ),
        code="invalid_key_data",
        params=params,
    )
    try:
        blob = base64.b64decode(encoded, validate=True)
    except ValueError:  # includes binascii.Error
        raise invalid_data from None

    # The blob starts with its own type name; a mismatch means the line was
    # edited or pieced together from two keys.
    embedded_type = _ssh_blob_type(blob)
    if embedded_type != key_type:
        if embedded_type is None:
            raise invalid_data
        raise ValidationError(
            _(
                "%(field)s says “%(key_type)s” but the key data is of type "
                "“%(embedded_type)s”; copy the whole line unchanged."
            ),
            code="key_type_mismatch",
            params={**params, "embedded_type": _display(embedded_type)},
        )
    try:
        # Checks the rest of the blob: key length, curve point, RSA numbers.
        serialization.load_ssh_public_key(f"{key_type} {encoded}".encode("ascii"))
    except (ValueError, UnsupportedAlgorithm):
        raise invalid_data from None
    return key_type, base64.b64encode(blob).decode("ascii")


def _ssh_blob_type(blob: bytes) -> str | None:
    if len(blob) < 4:
        return None
    length = int.from_bytes(blob[:4], "big")
    if length > len(blob) - 4:
        return None
    try:
        return blob[4 : 4 + length].decode("ascii")
    except UnicodeDecodeError:
        return None


def ssh_fingerprint_sha256(public_key_line) -> str:
    """Return "SHA256:…" exactly as ``ssh-keygen -lf`` prints it.

    Raises ValidationError if the line is not a valid public key.
    """
    _key_type, encoded = validate_ssh_public_key(public_key_line)
    digest = hashlib.sha256(base64.b64decode(encoded)).digest()
    return "SHA256:" + base64.b64encode(digest).decode("ascii").rstrip("=")
