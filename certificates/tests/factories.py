"""Builders for the portal's rows in tests: one of each noun, in a given organisation.

The keys and certificates they store come from pki.py.
"""

import datetime
import random
from decimal import Decimal

from django.utils import timezone

from certificates.models import (
    CAAccount,
    Certificate,
    CertificateVersion,
    Challenge,
    Deployment,
    DepositEntry,
    DNSCredential,
    DNSKind,
    InventoryCertificate,
    MonitoredEndpoint,
    Notification,
    Order,
    RenewalRun,
    TargetHost,
)

# Also read as factories.self_signed and factories.ssh_keypair by test modules.
from .pki import chain_for, self_signed, ssh_keypair


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


def _validated(cert):
    # Validated as the form validates it: tests renew only what a person could enter.
    cert.full_clean()
    cert.save()
    return cert


def http01_certificate(organization, ca, host, names, **fields):
    """A certificate for ``names`` proved by HTTP-01 on ``host``, and deployed there."""
    cert = _validated(Certificate(organization=organization, ca_account=ca, common_name=names[0],
                                  sans=names, challenge=Challenge.HTTP_01, **fields))
    Deployment.objects.create(certificate=cert, host=host)
    return cert


def dns_credential(organization, *, name="BIND", zones=("example.test",), secret_values=None,
                   **fields) -> DNSCredential:
    """A DNS credential of ``organization``, validated as the form validates it."""
    credential = DNSCredential(organization=organization, name=name, zones=list(zones),
                               **fields)
    credential.secret_values = secret_values or {}
    credential.full_clean()
    credential.save()
    return credential


def bind_credential(organization, bind_dns, *, name="BIND", zones=None, secret=None, **fields):
    """RFC 2136 with the testbed BIND's TSIG key (``secret`` replaces its secret)."""
    fields = {"server": bind_dns.address, "port": bind_dns.port,
              "tsig_key_name": bind_dns.tsig_key_name,
              "tsig_algorithm": bind_dns.tsig_algorithm, **fields}
    return dns_credential(
        organization, name=name, zones=zones or (bind_dns.zone, "lag.test"),
        kind=DNSKind.RFC2136, secret_values={"tsig_secret": secret or bind_dns.tsig_secret},
        **fields)


def powerdns_credential(organization, powerdns, *, name="PowerDNS", zones=None, api_key=None,
                        **fields):
    """The testbed PowerDNS through lexicon (``api_key`` replaces its key)."""
    return dns_credential(
        organization, name=name, zones=zones or (powerdns.zone,), kind=DNSKind.LEXICON,
        provider="powerdns", options={"pdns_server": powerdns.api_url},
        secret_values={"auth_token": api_key or powerdns.api_key}, **fields)


def dns01_certificate(organization, ca, bind_dns, names, *, credentials=None, **fields):
    """A certificate for ``names`` proved by DNS-01, by default through the testbed's
    BIND; ``credentials`` chooses others."""
    if credentials is None:
        credentials = [DNSCredential.objects.filter(organization=organization, name="BIND")
                       .first() or bind_credential(organization, bind_dns)]
    cert = Certificate(organization=organization, ca_account=ca, common_name=names[0],
                       sans=names, challenge=Challenge.DNS_01, **fields)
    cert.chosen_dns_credentials = credentials
    cert = _validated(cert)
    cert.dns_credentials.set(credentials)
    return cert


def host(organization, login_key, host_key="", **fields):
    """A host row with the usual nginx paths; nothing listens at its address."""
    defaults = dict(
        name="web1", address="127.0.0.2", ssh_port=2222, ssh_user="root",
        private_key_path="/etc/ssl/private/site.key", certificate_path="/etc/ssl/site.crt",
        ca_bundle_path="/etc/ssl/site.ca", fullchain_path="/etc/ssl/site.fullchain",
        document_root="/var/www/html", backup_dir="/var/backups/certs",
    )
    return TargetHost.objects.create(organization=organization, login_key=login_key,
                                     host_key=host_key, **{**defaults, **fields})


def agent_host(organization, **fields) -> TargetHost:
    """A host reached by its agent: no SSH settings; nothing enrolled yet."""
    return TargetHost.objects.create(organization=organization,
                                     transport=TargetHost.Transport.AGENT,
                                     **{"name": "agent1", **fields})


def portal_host(organization, testbed, *, confirmed=True, **fields) -> TargetHost:
    """The portal's record of ``testbed`` (a ``testbed.hosts.TargetHost``): its sshd,
    nginx and files, its key pinned and confirmed unless ``confirmed`` is False."""
    defaults = dict(
        name=testbed.name, address=testbed.address, ssh_port=testbed.ssh_port,
        ssh_user=testbed.ssh_user,
        host_key_confirmed_at=timezone.now() if confirmed else None,
        private_key_path=str(testbed.private_key_path),
        certificate_path=str(testbed.certificate_path),
        ca_bundle_path=str(testbed.ca_bundle_path),
        fullchain_path=str(testbed.fullchain_path),
        document_root=str(testbed.webroot), backup_dir=str(testbed.backup_dir),
        config_test_command=testbed.config_test_command,
        reload_command=testbed.reload_command,
        tls_check_address=testbed.address, tls_check_port=testbed.tls_port,
        tls_sni_name=testbed.sni_name,
    )
    return host(organization, testbed.client_key_pem,
                testbed.host_public_key if confirmed else "", **{**defaults, **fields})


def sites_host(organization, testbed, names, **fields) -> TargetHost:
    """The portal's record of ``testbed`` serving each of ``names`` from files of
    its own ({name} paths), each certificate checked under its own name."""
    testbed.serve_sites(names)
    return portal_host(
        organization, testbed, tls_sni_name="",
        private_key_path=testbed.site_path("privkey.pem"),
        certificate_path=testbed.site_path("cert.pem"),
        ca_bundle_path=testbed.site_path("chain.pem"),
        fullchain_path=testbed.site_path("fullchain.pem"), **fields)


def stored_version(certificate, key_pem, chain_pem) -> CertificateVersion:
    """A version of ``certificate`` made of PEM text, saved."""
    version = CertificateVersion.from_pem(certificate=certificate, chain_pem=chain_pem,
                                          private_key_pem=key_pem)
    version.save()
    return version


def new_version(certificate, name: str, *, private_key_pem: str = "") -> CertificateVersion:
    """A stored version of ``certificate`` for ``name``, a leaf and its CA;
    ``private_key_pem`` replaces the leaf's own key (a key that does not match
    makes nginx -t fail)."""
    key_pem, chain_pem = chain_for(name)
    return stored_version(certificate, private_key_pem or key_pem, chain_pem)


def make_current(certificate, version) -> None:
    certificate.current_version = version
    certificate.expires_at = version.not_after
    certificate.save(update_fields=["current_version", "expires_at"])


def version_for(organization, name: str, *, current=False) -> CertificateVersion:
    """A version of a new certificate for ``name`` on a new CA account; the
    certificate's current one when ``current``."""
    cert = certificate(organization, ca_account(organization), common_name=name, sans=[name])
    version = new_version(cert, name)
    if current:
        make_current(cert, version)
    return version


def one_of_everything(organization, tmp_path):
    """Every tenant-owned object, with a secret in each secret field."""
    ca = ca_account(organization, account_key=self_signed()[0],
                    eab_kid="kid-1", eab_hmac_key="c2VjcmV0LWhtYWMta2V5LWZvci1lYWItMTIzNDU2")
    credential = dns_credential(
        organization, name="primary", kind=DNSKind.RFC2136, server="127.0.0.1",
        tsig_key_name="portal-key",
        secret_values={"tsig_secret": "dHNpZy1zZWNyZXQtdmFsdWUtMTIzNA=="})
    cert = certificate(organization, ca, challenge="dns-01")
    cert.dns_credentials.add(credential)
    key_pem, cert_pem = self_signed()
    version = stored_version(cert, key_pem, cert_pem)
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
                dns_credential=credential,
                deployment=deployment, order=order, deposit_entry=entry, run=run, step=step,
                notification=notification)


def issued_world(organization, tmp_path):
    """one_of_everything, its version the certificate's current one."""
    made = one_of_everything(organization, tmp_path)
    make_current(made["certificate"], made["version"])
    return made


def unmanaged_rows(organization, count, *, seed=0):
    """`count` imported and discovered certificates (bulk), a tenth of them
    served at a monitored endpoint, for pages and benchmarks at scale."""
    rng = random.Random(seed or count)
    now = timezone.now()
    rows = InventoryCertificate.objects.bulk_create([
        InventoryCertificate(
            organization=organization, source="discovered" if i % 3 else "imported",
            common_name=f"u{i}.example.test", sans=[f"u{i}.example.test"],
            issuer="CN=Other CA", serial=f"{i:04X}", not_before=now,
            expires_at=now + datetime.timedelta(days=rng.randint(-10, 400)),
            key_type="RSA", key_size=2048, signature_algorithm="sha256WithRSAEncryption",
            fingerprint_sha256=f"{organization.pk:08x}{i:056x}", chain_pem="-",
            seen_at=[{"file": f"u{i}.pem"}],
        ) for i in range(count)
    ], batch_size=2000)
    MonitoredEndpoint.objects.bulk_create([
        MonitoredEndpoint(organization=organization, address=f"u{i}.example.test", port=443,
                          certificate=row, result="problem" if i % 7 == 0 else "ok",
                          served_fingerprint=row.fingerprint_sha256, last_checked_at=now)
        for i, row in enumerate(rows[::10])
    ], batch_size=2000)
    return rows


def issued(organization, tmp_path, *, renew_in_days: int) -> Certificate:
    """An issued certificate (price 1,100 JPY, deposit 10,000 JPY) whose renewal
    time is ``renew_in_days`` away (in the past when negative)."""
    made = one_of_everything(organization, tmp_path)
    cert, version = made["certificate"], made["version"]
    RenewalRun.objects.all().delete()
    Certificate.objects.filter(pk=cert.pk).update(
        current_version=version, expires_at=version.not_after,
        renew_after=timezone.now() + datetime.timedelta(days=renew_in_days))
    cert.refresh_from_db()
    return cert
