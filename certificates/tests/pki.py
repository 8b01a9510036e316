"""Throw-away certificate chains for deployment tests: a CA and a leaf it signed.

nginx serves whatever it is given, trusted or not; the tests compare the
served leaf's fingerprint with the deployed version's.
"""

import datetime

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from certificates.models import CertificateVersion


def _pem(cert) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def _key_pem(key) -> str:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()


def _build(subject, issuer, public_key, signing_key, *, ca: bool, sans=()):
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder().subject_name(subject).issuer_name(issuer)
        .public_key(public_key).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if sans:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName(n) for n in sans]), critical=False
        )
    return builder.sign(signing_key, hashes.SHA256())


def chain_for(name: str) -> tuple[str, str]:
    """``(private key PEM, chain PEM)``: a leaf for ``name`` and the CA that signed it."""
    ca_key, leaf_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(
        ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Throw-away test CA")])
    ca = _build(ca_name, ca_name, ca_key.public_key(), ca_key, ca=True)
    leaf_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    leaf = _build(leaf_name, ca_name, leaf_key.public_key(), ca_key, ca=False, sans=[name])
    return _key_pem(leaf_key), _pem(leaf) + _pem(ca)


def new_version(certificate, name: str, *, private_key_pem: str = "") -> CertificateVersion:
    """A stored version of ``certificate`` for ``name``; ``private_key_pem`` replaces
    the leaf's own key (a key that does not match makes nginx -t fail)."""
    key_pem, chain_pem = chain_for(name)
    version = CertificateVersion.from_pem(certificate=certificate, chain_pem=chain_pem,
                                          private_key_pem=private_key_pem or key_pem)
    version.save()
    return version


def make_current(certificate, version) -> None:
    certificate.current_version = version
    certificate.expires_at = version.not_after
    certificate.save(update_fields=["current_version", "expires_at"])
