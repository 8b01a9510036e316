"""Private keys and CSRs for issuance, with `cryptography` (and `acme`'s CSR helper)."""

import ipaddress
from collections.abc import Callable

from acme import crypto_util
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes

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
    """A CSR carrying every name as a SAN (CAs ignore the subject CN): a DNS
    name as a dNSName, an IP address as an iPAddress (RFC 8738)."""
    domains, addresses = split_names(names)
    return crypto_util.make_csr(private_key_pem.encode(), domains=domains or None,
                                ipaddrs=addresses or None)


def split_names(names: list[str]) -> tuple[
        list[str], list[ipaddress.IPv4Address | ipaddress.IPv6Address]]:
    """(DNS names, IP addresses) of a certificate's normalised names."""
    domains, addresses = [], []
    for name in names:
        try:
            addresses.append(ipaddress.ip_address(name))
        except ValueError:
            domains.append(name)
    return domains, addresses


def san_names(sans: x509.SubjectAlternativeName) -> set[str]:
    """The names of a SAN extension as the portal writes them: DNS names in
    lower case, IP addresses in their canonical text form."""
    return ({name.lower() for name in sans.get_values_for_type(x509.DNSName)}
            | {str(address) for address in sans.get_values_for_type(x509.IPAddress)})


def public_key_matches(private_key_pem: str, certificate: x509.Certificate) -> bool:
    """Whether `certificate` (a cryptography x509 object) is for this key."""
    key = serialization.load_pem_private_key(private_key_pem.encode(), password=None)
    spki = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    return key.public_key().public_bytes(*spki) == certificate.public_key().public_bytes(*spki)


def _spki(public_key: PublicKeyTypes) -> bytes:
    return public_key.public_bytes(serialization.Encoding.DER,
                                   serialization.PublicFormat.SubjectPublicKeyInfo)


def check_csr(csr_pem: str, names: list[str]) -> x509.CertificateSigningRequest:
    """A CSR made elsewhere (by an agent, for a key that never leaves its
    server): readable, signed by its own key, with a key of an accepted size,
    and naming exactly ``names``. Raises ValueError in words otherwise."""
    try:
        csr = x509.load_pem_x509_csr(csr_pem.encode())
    except ValueError as exc:
        raise ValueError("it is not a PEM certificate request") from exc
    if not csr.is_signature_valid:
        raise ValueError("its signature does not match its key")
    key = csr.public_key()
    if isinstance(key, rsa.RSAPublicKey) and key.key_size < 2048:
        raise ValueError(f"its RSA key has {key.key_size} bits; at least 2048 are needed")
    if not isinstance(key, rsa.RSAPublicKey | ec.EllipticCurvePublicKey):
        raise ValueError("its key is neither RSA nor ECDSA")
    try:
        sans = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        asked = san_names(sans)
    except x509.ExtensionNotFound:
        asked = set()
    wanted = {name.lower() for name in names}
    if asked != wanted:
        raise ValueError("it names {} where the certificate has {}".format(
            ", ".join(sorted(asked)) or "no names", ", ".join(sorted(wanted))))
    return csr


def csr_der(csr_pem: str) -> bytes:
    return x509.load_pem_x509_csr(csr_pem.encode()).public_bytes(serialization.Encoding.DER)


def certificate_matches_csr(csr_pem: str, certificate: x509.Certificate) -> bool:
    """Whether ``certificate`` is for the key of this CSR."""
    csr = x509.load_pem_x509_csr(csr_pem.encode())
    return _spki(csr.public_key()) == _spki(certificate.public_key())
