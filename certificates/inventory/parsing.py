"""Reading certificates and keys from files, with `cryptography` alone.

Nothing here touches the database: `read_files` turns uploaded or read files
into leaves (each with its chain and, when one came along, its key), or raises
`ImportRefused` naming the file and what is wrong with it. Files are read as
one pool, so a folder with `cert.pem`, `chain.pem` and `privkey.pem` imports as
one certificate with its chain and key.
"""

import hashlib
import re
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.types import (
    CertificatePublicKeyTypes,
    PrivateKeyTypes,
)
from cryptography.hazmat.primitives.serialization import Encoding, pkcs12
from django.utils.translation import gettext as _

PublicKey = CertificatePublicKeyTypes
PrivateKey = PrivateKeyTypes

PEM_BLOCK = re.compile(rb"-----BEGIN ([A-Z0-9 ]+)-----.+?-----END \1-----", re.DOTALL)
# Larger files are not certificates; reading them would only cost memory.
MAX_FILE_BYTES = 1024 * 1024


class ImportRefused(ValueError):  # noqa: N818 (a refusal, not a bug)
    """The files cannot be imported; `field` names the form field or file."""

    def __init__(self, message: str, *, field: str = "files"):
        super().__init__(message)
        self.message = message
        self.field = field


@dataclass
class Leaf:
    """A server certificate read from a file, with what identifies it."""

    certificate: x509.Certificate
    origin: str
    chain: list[x509.Certificate] = field(default_factory=list)
    private_key_pem: str = ""
    # Every file the same leaf was read from (a cert.pem and its fullchain.pem).
    origins: list[str] = field(default_factory=list)

    @property
    def fingerprint(self) -> str:
        return hashlib.sha256(self.certificate.public_bytes(Encoding.DER)).hexdigest()

    def chain_pem(self) -> str:
        return "".join(c.public_bytes(Encoding.PEM).decode() for c in
                       [self.certificate, *self.chain])

    def details(self) -> dict:
        """The columns of an inventory row, as `cryptography` reads them."""
        cert = self.certificate
        key_type, key_size = key_description(cert.public_key())
        return {
            "common_name": common_name(cert),
            "sans": dns_names(cert),
            "issuer": cert.issuer.rfc4514_string()[:500],
            "serial": format(cert.serial_number, "X").zfill(2)[:64],
            "not_before": cert.not_valid_before_utc,
            "expires_at": cert.not_valid_after_utc,
            "key_type": key_type,
            "key_size": key_size,
            "signature_algorithm": signature_name(cert),
            "fingerprint_sha256": self.fingerprint,
            "chain_pem": self.chain_pem(),
        }


@dataclass
class _Pool:
    leaves: list[Leaf] = field(default_factory=list)
    authorities: list[x509.Certificate] = field(default_factory=list)
    keys: list[tuple[str, PrivateKey]] = field(default_factory=list)  # (origin, key)


def common_name(cert: x509.Certificate) -> str:
    names = cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
    return str(names[0].value)[:253] if names else ""


def dns_names(cert: x509.Certificate) -> list[str]:
    try:
        extension = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return []
    names = extension.value.get_values_for_type(x509.DNSName)
    addresses = [str(a) for a in extension.value.get_values_for_type(x509.IPAddress)]
    return [*names, *addresses]


def key_description(public_key: PublicKey) -> tuple[str, int]:
    if isinstance(public_key, rsa.RSAPublicKey):
        return "RSA", public_key.key_size
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        return f"ECDSA {public_key.curve.name}", public_key.curve.key_size
    if isinstance(public_key, ed25519.Ed25519PublicKey):
        return "Ed25519", 256
    if isinstance(public_key, ed448.Ed448PublicKey):
        return "Ed448", 456
    if isinstance(public_key, dsa.DSAPublicKey):
        return "DSA", public_key.key_size
    return type(public_key).__name__, 0


def signature_name(cert: x509.Certificate) -> str:
    try:
        return cert.signature_algorithm_oid._name[:40]
    except AttributeError:  # an OID cryptography has no name for
        return cert.signature_algorithm_oid.dotted_string[:40]


def is_authority(cert: x509.Certificate) -> bool:
    try:
        return bool(cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except x509.ExtensionNotFound:
        return False


def _public_der(key: PrivateKey | x509.Certificate) -> bytes:
    return key.public_key().public_bytes(Encoding.DER,
                                         serialization.PublicFormat.SubjectPublicKeyInfo)


def _key_pem(key: PrivateKey) -> str:
    return key.private_bytes(Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()


def _add_certificates(pool: _Pool, origin: str,
                      certificates: list[x509.Certificate]) -> None:
    for cert in certificates:
        if is_authority(cert):
            pool.authorities.append(cert)
        else:
            pool.leaves.append(Leaf(cert, origin))


def _read_pkcs12(pool: _Pool, origin: str, data: bytes, password: bytes | None) -> None:
    try:
        key, cert, extra = pkcs12.load_key_and_certificates(data, password or None)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise ImportRefused(_(
            "%(file)s is neither PEM nor a PKCS#12 file that opens with the password given "
            "(%(reason)s).") % {"file": origin, "reason": exc}) from exc
    _add_certificates(pool, origin, [c for c in [cert, *extra] if c is not None])
    if key is not None:
        pool.keys.append((origin, key))


def _read_key(pool: _Pool, origin: str, block: bytes, password: bytes | None) -> None:
    try:
        key = serialization.load_pem_private_key(block, password or None)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise ImportRefused(_(
            "The private key in %(file)s cannot be read: it is damaged or needs another "
            "password.") % {"file": origin}) from exc
    pool.keys.append((origin, key))


def _read_pem(pool: _Pool, origin: str, data: bytes, password: bytes | None) -> None:
    for match in PEM_BLOCK.finditer(data):
        label, block = match.group(1), match.group(0)
        if label == b"CERTIFICATE":
            try:
                _add_certificates(pool, origin, [x509.load_pem_x509_certificate(block)])
            except ValueError as exc:
                raise ImportRefused(_("A certificate in %(file)s is damaged and cannot be "
                                      "read.") % {"file": origin}) from exc
        elif label.endswith(b"PRIVATE KEY"):
            _read_key(pool, origin, block, password)


def _read_one(pool: _Pool, origin: str, data: bytes, password: bytes | None) -> None:
    if len(data) > MAX_FILE_BYTES:
        raise ImportRefused(_("%(file)s is larger than 1 MB: it is not a certificate file.")
                            % {"file": origin})
    if b"-----BEGIN " in data:
        before = len(pool.leaves) + len(pool.authorities) + len(pool.keys)
        _read_pem(pool, origin, data, password)
        if len(pool.leaves) + len(pool.authorities) + len(pool.keys) == before:
            raise ImportRefused(_("%(file)s holds no certificate and no private key in PEM.")
                                % {"file": origin})
    else:
        _read_pkcs12(pool, origin, data, password)


def _chain_for(leaf: Leaf, authorities: list[x509.Certificate]) -> list[x509.Certificate]:
    """Issuers of the leaf from the files, leaf to root, each once."""
    chain: list[x509.Certificate] = []
    current = leaf.certificate
    while len(chain) < len(authorities):
        issuer = next((a for a in authorities if a.subject == current.issuer
                       and a not in chain and a != current), None)
        if issuer is None:
            break
        chain.append(issuer)
        if issuer.subject == issuer.issuer:
            break
        current = issuer
    return chain


def _match_keys(pool: _Pool) -> None:
    by_public = {_public_der(leaf.certificate): leaf for leaf in pool.leaves}
    for origin, key in pool.keys:
        leaf = by_public.get(_public_der(key))
        if leaf is None:
            if not pool.leaves:
                raise ImportRefused(_(
                    "%(file)s holds a private key without its certificate: add the "
                    "certificate to the files imported.") % {"file": origin})
            raise ImportRefused(_(
                "The private key in %(file)s does not match any certificate imported: it "
                "belongs to another certificate.") % {"file": origin})
        leaf.private_key_pem = _key_pem(key)


def read_files(files: list[tuple[str, bytes]], *, password: str = "") -> list[Leaf]:
    """Every leaf in `files` ((name, content) pairs), with its chain and key;
    a leaf found twice is returned once."""
    if not files:
        raise ImportRefused(_("Choose at least one file, or paste a certificate."))
    secret = password.encode() if password else None
    pool = _Pool()
    for origin, data in files:
        _read_one(pool, origin, data, secret)
    if not pool.leaves:
        if pool.keys:
            _match_keys(pool)  # names the key's file: a key without its certificate
        if pool.authorities:
            subject = pool.authorities[0].subject.rfc4514_string()
            raise ImportRefused(_(
                "Only CA certificates were found (%(subject)s): the inventory holds server "
                "certificates; import the server certificate with its chain.")
                % {"subject": subject})
        raise ImportRefused(_("No certificate was found in the files."))
    _match_keys(pool)
    unique: dict[str, Leaf] = {}
    for leaf in pool.leaves:
        leaf.chain = _chain_for(leaf, pool.authorities)
        kept = unique.setdefault(leaf.fingerprint, leaf)
        kept.private_key_pem = kept.private_key_pem or leaf.private_key_pem
        if leaf.origin not in kept.origins:
            kept.origins.append(leaf.origin)
        if len(leaf.chain) > len(kept.chain):  # the fullchain file over the bare leaf
            kept.chain = leaf.chain
    return list(unique.values())
