"""Throw-away keys and certificates: TLS (x509) and SSH (ed25519)."""

import base64
import datetime
import hashlib
import ipaddress
import os
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.x509.oid import NameOID

_VALIDITY = datetime.timedelta(days=30)


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _certificate(subject: x509.Name, key, issuer: x509.Name, issuer_key, *, ca: bool, sans=None):
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))  # tolerate clock skew
        .not_valid_after(now + _VALIDITY)
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        # The key identifiers a verifier of the Web PKI's rules wants (cryptography's,
        # the portal's endpoint checks), so that a chain of these CAs can verify.
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                       critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
            issuer_key.public_key()), critical=False)
        .add_extension(x509.KeyUsage(
            digital_signature=not ca, key_cert_sign=ca, crl_sign=ca, content_commitment=False,
            key_encipherment=False, data_encipherment=False, key_agreement=False,
            encipher_only=False, decipher_only=False), critical=True)
    )
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def new_key() -> ec.EllipticCurvePrivateKey:
    # P-256: quick to generate, and every peer here (Go, OpenSSL) accepts it.
    return ec.generate_private_key(ec.SECP256R1())


def make_ca(common_name: str):
    """A self-signed CA: returns ``(key, certificate)``."""
    key, name = new_key(), _name(common_name)
    return key, _certificate(name, key, name, key, ca=True)


def make_leaf(ca_key, ca_cert, dns_names=(), ip_addresses=()):
    """A server certificate signed by ``ca``: returns ``(key, certificate)``."""
    sans = [x509.DNSName(n) for n in dns_names]
    sans += [x509.IPAddress(ipaddress.ip_address(a)) for a in ip_addresses]
    key = new_key()
    subject = _name(dns_names[0] if dns_names else ip_addresses[0])
    return key, _certificate(subject, key, ca_cert.subject, ca_key, ca=False, sans=sans)


def self_signed(dns_name: str):
    """A self-signed server certificate for ``dns_name``: ``(key, certificate)``."""
    key, name = new_key(), _name(dns_name)
    return key, _certificate(name, key, name, key, ca=False, sans=[x509.DNSName(dns_name)])


def _private_pem(key, form: serialization.PrivateFormat) -> str:
    pem = key.private_bytes(serialization.Encoding.PEM, form, serialization.NoEncryption())
    return pem.decode()


def key_pem(key) -> str:
    return _private_pem(key, serialization.PrivateFormat.PKCS8)


def cert_pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def leaf_sha256(pem_path: Path) -> str:
    """Hex SHA-256 of the DER of the first certificate in a PEM file."""
    leaf = x509.load_pem_x509_certificate(Path(pem_path).read_bytes())
    return hashlib.sha256(leaf.public_bytes(serialization.Encoding.DER)).hexdigest()


def write_private(path: Path, text: str) -> None:
    """Write a secret readable by its owner only (sshd ignores looser host keys)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text)
    os.chmod(path, 0o600)  # O_CREAT's mode does not apply to an existing file


def ssh_keypair(comment: str) -> tuple[str, str]:
    """A new ed25519 SSH key: ``(OpenSSH private key text, public key line)``."""
    key = ed25519.Ed25519PrivateKey.generate()
    private = _private_pem(key, serialization.PrivateFormat.OpenSSH)
    public = key.public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    ).decode()
    return private, f"{public} {comment}"


def ssh_fingerprint(public_line: str) -> str:
    """``SHA256:...`` of a public key line, as ``ssh-keygen -lf`` prints it."""
    blob = base64.b64decode(public_line.split()[1])
    return "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")
