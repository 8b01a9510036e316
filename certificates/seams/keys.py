"""Private keys and CSRs for issuance, with `cryptography` (and `acme`'s CSR helper)."""

from collections.abc import Callable

from acme import crypto_util
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

# By the values of models.KeyType (a seam imports no model; a test checks that
# every key type has its generator here).
_GENERATORS: dict[str, Callable[[], ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey]] = {
    "ec-p256": lambda: ec.generate_private_key(ec.SECP256R1()),
    "ec-p384": lambda: ec.generate_private_key(ec.SECP384R1()),
    "rsa-2048": lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048),
    "rsa-3072": lambda: rsa.generate_private_key(public_exponent=65537, key_size=3072),
    "rsa-4096": lambda: rsa.generate_private_key(public_exponent=65537, key_size=4096),
}
KEY_TYPES = frozenset(_GENERATORS)


def generate_private_key(key_type: str) -> str:
    """A fresh private key of `key_type`, as unencrypted PKCS#8 PEM (it is
    encrypted at rest by the model field, and written 0600 on hosts)."""
    key = _GENERATORS[str(key_type)]()
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


def make_csr(private_key_pem: str, names: list[str]) -> bytes:
    """A CSR carrying every name as a SAN (CAs ignore the subject CN)."""
    return crypto_util.make_csr(private_key_pem.encode(), domains=list(names))


def public_key_matches(private_key_pem: str, certificate: x509.Certificate) -> bool:
    """Whether `certificate` (a cryptography x509 object) is for this key."""
    key = serialization.load_pem_private_key(private_key_pem.encode(), password=None)
    spki = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    return key.public_key().public_bytes(*spki) == certificate.public_key().public_bytes(*spki)
