"""Throw-away key material for tests: TLS keys, certificates and chains, SSH key
pairs, and a stand-in for the CA seam that answers with certificates made here.

Nothing here touches the database; factories.py stores what it needs of this.
"""

import datetime
import subprocess
from types import SimpleNamespace

from acme import messages
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from cryptography.x509.oid import NameOID

# Every kind a validator test needs, the refused ones (rsa1024, p521, ed448) too.
_KEY_KINDS = {
    "rsa2048": lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048),
    "rsa1024": lambda: rsa.generate_private_key(public_exponent=65537, key_size=1024),
    "p256": lambda: ec.generate_private_key(ec.SECP256R1()),
    "p384": lambda: ec.generate_private_key(ec.SECP384R1()),
    "p521": lambda: ec.generate_private_key(ec.SECP521R1()),
    "ed25519": ed25519.Ed25519PrivateKey.generate,
    "ed448": ed448.Ed448PrivateKey.generate,
}


def private_key(kind: str = "p256"):
    """A new private key of ``kind`` (a key of _KEY_KINDS)."""
    return _KEY_KINDS[kind]()


def key_pem(key, fmt=serialization.PrivateFormat.PKCS8, encryption=None) -> str:
    return key.private_bytes(serialization.Encoding.PEM, fmt,
                             encryption or serialization.NoEncryption()).decode()


def cert_pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def issue(subject: str, public_key, signing_key, *, issuer: str | None = None, names=(),
          ca: bool | None = None, authority_key_id=False, backdated=datetime.timedelta(0),
          days=90, serial: int | None = None) -> x509.Certificate:
    """A certificate for ``public_key`` named ``subject``, signed by ``signing_key``
    in the name of ``issuer`` (``subject`` itself: self-signed).

    ``names`` become the subject alternative names; ``ca`` True or False adds a
    critical BasicConstraints, None none; ``authority_key_id`` adds the
    extension ARI needs; validity starts ``backdated`` before now; ``serial``
    replaces a random serial number.
    """
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder().subject_name(_name(subject))
        .issuer_name(_name(issuer or subject))
        .public_key(public_key).serial_number(serial or x509.random_serial_number())
        .not_valid_before(now - backdated).not_valid_after(now + datetime.timedelta(days=days))
    )
    if ca is not None:
        builder = builder.add_extension(x509.BasicConstraints(ca=ca, path_length=None),
                                        critical=True)
    if names:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), critical=False)
    if authority_key_id:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(signing_key.public_key()),
            critical=False)
    return builder.sign(signing_key, hashes.SHA256())


def self_signed(common_name="www.example.test") -> tuple[str, str]:
    """``(private key PEM, certificate PEM)``: a self-signed leaf for ``common_name``."""
    key = private_key()
    return key_pem(key), cert_pem(issue(common_name, key.public_key(), key,
                                        names=[common_name]))


def chain_for(name: str) -> tuple[str, str]:
    """``(private key PEM, chain PEM)``: a leaf for ``name`` and the CA that signed it.

    nginx serves it, trusted or not: deployment tests compare the served leaf's
    fingerprint with the deployed version's."""
    ca_key, leaf_key = private_key(), private_key()
    # Backdated: the peers that check it (nginx, OpenSSL) may run a little behind.
    validity = dict(backdated=datetime.timedelta(minutes=5), days=30)
    ca = issue("Throw-away test CA", ca_key.public_key(), ca_key, ca=True, **validity)
    leaf = issue(name, leaf_key.public_key(), ca_key, issuer="Throw-away test CA", ca=False,
                 names=[name], **validity)
    return key_pem(leaf_key), cert_pem(leaf) + cert_pem(ca)


def leaf_for(public_key, names) -> str:
    """A chain of one leaf for ``public_key`` and ``names``, signed by a throw-away CA."""
    return cert_pem(issue(names[0], public_key, private_key(), issuer="Crafted CA",
                          names=names))


def leaf_with_authority_key_id(name: str) -> tuple[str, str]:
    """``(private key PEM, leaf PEM)``: a CA-signed leaf carrying an Authority Key
    Identifier, as ARI needs."""
    ca_key, key = private_key(), private_key()
    return key_pem(key), cert_pem(issue(name, key.public_key(), ca_key, issuer="ARI test CA",
                                        authority_key_id=True))


def ssh_keypair(tmp_path, name="key") -> tuple[str, str]:
    """(private key text, public key line) made by ssh-keygen, as an operator would."""
    path = tmp_path / name
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)
    return path.read_text(), (tmp_path / f"{name}.pub").read_text().strip()


def ssh_keygen_line(tmp_path, public_key_line: str) -> str:
    """What ``ssh-keygen -lf`` prints for ``public_key_line``, as an administrator
    would read it on the host: "256 SHA256:… comment (ED25519)"."""
    path = tmp_path / "host_key.pub"
    path.write_text(public_key_line + "\n")
    printed = subprocess.run(["ssh-keygen", "-lf", str(path)], check=True, text=True,
                             capture_output=True)
    return printed.stdout.strip()


class CraftedCA:
    """The CA seam (``issuance.connect_ca``), answering an order with whatever leaf
    ``craft(csr)`` makes, or raising ``error`` when the order is placed: a real CA
    cannot be made to return a wrong certificate or an error nobody sorted."""

    registered, account_url = False, ""

    def __init__(self, craft=None, error=None):
        self.craft, self.error = craft, error

    def ensure_account(self):
        return self.account_url

    def new_order(self, csr_pem, *, replaces=None):
        if self.error is not None:
            raise self.error
        self.csr = x509.load_pem_x509_csr(csr_pem)
        return SimpleNamespace(uri="https://ca.invalid/order/1",
                               body=SimpleNamespace(status=messages.STATUS_READY))

    def finalize(self, order, *, timeout):
        return self.craft(self.csr)

    def renewal_window(self, leaf_pem):
        return None


def csr_for(names, key=None) -> str:
    """A PEM CSR for ``names`` (SANs), signed by ``key`` (a new P-256 key by default),
    as an agent making its key on the server sends it."""
    key = key or private_key()
    csr = (x509.CertificateSigningRequestBuilder()
           .subject_name(_name(names[0]))
           .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]),
                          critical=False)
           .sign(key, hashes.SHA256()))
    return csr.public_bytes(serialization.Encoding.PEM).decode()
