"""Small builders for test data: one of each noun, in a given organisation."""

import datetime
import subprocess
from decimal import Decimal

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from certificates.models import (
    CAAccount,
    Certificate,
    CertificateVersion,
    Deployment,
    DepositEntry,
    Notification,
    Order,
    RenewalRun,
    TargetHost,
)


def self_signed(common_name="www.example.test"):
    """A throw-away key and certificate, as PEM text."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now).not_valid_after(now + datetime.timedelta(days=90))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(common_name)]), critical=False)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    return key_pem, cert.public_bytes(serialization.Encoding.PEM).decode()


def ssh_keypair(tmp_path, name="key"):
    """(private key text, public key line) made by ssh-keygen, as an operator would."""
    path = tmp_path / name
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)
    return path.read_text(), (tmp_path / f"{name}.pub").read_text().strip()


def ca_account(organization, **fields):
    defaults = dict(
        name="FujiSSL", directory_url="https://127.0.0.1:14000/dir",
        contact_email="ops@example.test", price=Decimal("1100"), currency="JPY",
        low_balance_threshold=Decimal("5000"),
    )
    return CAAccount.objects.create(organization=organization, **{**defaults, **fields})


def certificate(organization, ca, **fields):
    defaults = dict(common_name="www.example.test", sans=["www.example.test"])
    return Certificate.objects.create(organization=organization, ca_account=ca,
                                      **{**defaults, **fields})


def host(organization, login_key, host_key="", **fields):
    defaults = dict(
        name="web1", address="127.0.0.2", ssh_port=2222, ssh_user="root",
        private_key_path="/etc/ssl/private/site.key", certificate_path="/etc/ssl/site.crt",
        ca_bundle_path="/etc/ssl/site.ca", fullchain_path="/etc/ssl/site.fullchain",
        document_root="/var/www/html", backup_dir="/var/backups/certs",
    )
    return TargetHost.objects.create(organization=organization, login_key=login_key,
                                     host_key=host_key, **{**defaults, **fields})


def one_of_everything(organization, tmp_path):
    """Every tenant-owned object, with a secret in each secret field."""
    ca = ca_account(organization, account_key=self_signed()[0],
                    eab_kid="kid-1", eab_hmac_key="c2VjcmV0LWhtYWMta2V5LWZvci1lYWItMTIzNDU2")
    cert = certificate(organization, ca, tsig_secret="dHNpZy1zZWNyZXQtdmFsdWUtMTIzNA==",
                       challenge="dns-01", dns_server="127.0.0.1", tsig_key_name="portal-key")
    key_pem, cert_pem = self_signed()
    version = CertificateVersion.from_pem(certificate=cert, chain_pem=cert_pem,
                                          private_key_pem=key_pem)
    version.save()
    login_key, host_key = ssh_keypair(tmp_path, f"login-{organization.slug}")
    target = host(organization, login_key=login_key, host_key=host_key)
    deployment = Deployment.objects.create(certificate=cert, host=target, last_version=version)
    order = Order.objects.create(organization=organization, ca_account=ca, certificate=cert,
                                 product=Order.Product.SINGLE, price=ca.price)
    entry = DepositEntry.objects.create(ca_account=ca, kind=DepositEntry.Kind.TOP_UP,
                                        amount=Decimal("10000"), reference=f"topup-{ca.pk}")
    run = RenewalRun.objects.create(certificate=cert, trigger=RenewalRun.Trigger.MANUAL,
                                    private_key=self_signed()[0])
    step = run.step("order", "done", host=target)
    notification = Notification.objects.create(
        organization=organization, certificate=cert, kind=Notification.Kind.EXPIRING,
        recipient="ops@example.test", subject="expiring",
    )
    return dict(ca_account=ca, certificate=cert, version=version, host=target,
                deployment=deployment, order=order, deposit_entry=entry, run=run, step=step,
                notification=notification)
