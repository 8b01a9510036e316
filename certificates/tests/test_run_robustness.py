"""A run always ends, and ends right: an error nobody foresaw fails it with the
error recorded and the usual alert (never "running" until its lease ends), and
a leaf that is not for the order's key and names is neither stored nor paid.

A real CA cannot be made to return a wrong certificate or to raise an error
nobody sorted, so those tests replace the one seam that talks to the CA
(`issuance.connect_ca`); the certificate without an authority key identifier
is renewed against the real Pebble."""

import datetime
from decimal import Decimal
from types import SimpleNamespace

import pytest
from acme import messages
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID
from django.utils import timezone

from certificates import deposit, issuance, renewal
from certificates.models import (
    Certificate,
    CertificateVersion,
    DepositEntry,
    Notification,
    RenewalRun,
    Reservation,
)
from certificates.tests.factories import ca_account, self_signed
from certificates.tests.test_deposit_reservations import dns01_certificate

NAMES = ["www.example.test", "example.test"]


def leaf_for(public_key, names):
    """A chain of one leaf for `public_key` and `names`, signed by a throw-away CA."""
    issuer_key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    leaf = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Crafted CA")]))
        .public_key(public_key).serial_number(x509.random_serial_number())
        .not_valid_before(now).not_valid_after(now + datetime.timedelta(days=90))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]),
                       critical=False)
        .sign(issuer_key, hashes.SHA256()))
    return leaf.public_bytes(Encoding.PEM).decode()


class CraftedCA:
    """The CA seam, answering an order with whatever leaf `craft(csr)` makes, or
    raising `error` when the order is placed."""

    registered, account_url = False, ""

    def __init__(self, craft=None, error=None):
        self.craft, self.error = craft, error

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


@pytest.fixture
def paid_run(organization, owner):
    """A run of a certificate on a CA account whose deposit covers one renewal."""
    owner.email = "owner@example.test"
    owner.save()
    ca = ca_account(organization, price=Decimal("1100"))
    deposit.top_up(ca_account=ca, amount=Decimal("1100"))
    cert = Certificate.objects.create(organization=organization, ca_account=ca,
                                      common_name=NAMES[0], sans=NAMES, challenge="dns-01")
    return renewal.start_run(certificate_id=cert.pk, trigger=RenewalRun.Trigger.MANUAL,
                             enqueue=False)


CRAFTS = {
    "another key": lambda csr: leaf_for(ec.generate_private_key(ec.SECP256R1()).public_key(),
                                        NAMES),
    "a name more": lambda csr: leaf_for(csr.public_key(), [*NAMES, "evil.example.test"]),
    "a name less": lambda csr: leaf_for(csr.public_key(), NAMES[:1]),
}


@pytest.mark.django_db
@pytest.mark.parametrize("wrong", sorted(CRAFTS))
def test_a_leaf_not_for_the_orders_key_and_names_is_not_stored_nor_charged(
    paid_run, monkeypatch, wrong
):
    monkeypatch.setattr(issuance, "connect_ca", lambda ca_account: CraftedCA(CRAFTS[wrong]))

    renewal.execute(run_id=paid_run.pk)

    run = RenewalRun.objects.get(pk=paid_run.pk)
    assert run.status == RenewalRun.Status.FAILED and run.error_class == "permanent"
    assert "not stored" in run.error
    assert not CertificateVersion.objects.exists()
    assert not DepositEntry.objects.filter(kind=DepositEntry.Kind.CHARGE).exists()
    assert Reservation.objects.get(run=run).status == Reservation.Status.RELEASED
    assert run.certificate.ca_account.available() == Decimal("1100")


@pytest.mark.django_db
def test_a_leaf_for_the_orders_key_and_names_is_stored_and_charged_once(paid_run, monkeypatch):
    """The check lets the right certificate through (the crafted CA is sound)."""
    from django.db import transaction

    monkeypatch.setattr(issuance, "connect_ca", lambda ca_account: CraftedCA(
        lambda csr: leaf_for(csr.public_key(), list(reversed(NAMES)))))
    monkeypatch.setattr(transaction, "on_commit", lambda func, using=None, robust=False: None)

    renewal.execute(run_id=paid_run.pk)

    run = RenewalRun.objects.get(pk=paid_run.pk)
    assert run.version is not None, run.error
    assert DepositEntry.objects.filter(kind=DepositEntry.Kind.CHARGE).count() == 1
    assert Reservation.objects.get(run=run).status == Reservation.Status.SETTLED
    assert run.certificate.ca_account.balance() == 0


@pytest.mark.django_db
def test_an_unexpected_error_ends_the_run_as_failed_recorded_and_alerted(paid_run, monkeypatch):
    monkeypatch.setattr(issuance, "connect_ca", lambda ca_account: CraftedCA(
        error=KeyError("authorizations")))

    renewal.execute(run_id=paid_run.pk)

    run = RenewalRun.objects.get(pk=paid_run.pk)
    assert run.status == RenewalRun.Status.FAILED
    assert run.finished_at is not None and run.lease_until is None
    assert "KeyError" in run.error and "authorizations" in run.error
    cert = Certificate.objects.get(pk=run.certificate_id)
    assert cert.failure_count == 1 and cert.next_attempt_at is not None
    assert Notification.objects.filter(kind=Notification.Kind.RENEWAL_FAILED,
                                       recipient="owner@example.test",
                                       certificate=cert).exists()
    assert Reservation.objects.get(run=run).status == Reservation.Status.RELEASED


@pytest.mark.django_db
def test_a_run_stopped_by_its_time_limit_fails_as_transient_and_is_retried_soon(
        paid_run, monkeypatch):
    from celery.exceptions import SoftTimeLimitExceeded

    monkeypatch.setattr(issuance, "connect_ca", lambda ca_account: CraftedCA(
        error=SoftTimeLimitExceeded()))

    renewal.execute(run_id=paid_run.pk)

    run = RenewalRun.objects.get(pk=paid_run.pk)
    assert run.status == RenewalRun.Status.FAILED and run.error_class == "transient"
    assert "time limit" in run.error
    cert = Certificate.objects.get(pk=run.certificate_id)
    # The first step of the usual backoff, not the day a permanent error waits.
    assert cert.next_attempt_at - run.finished_at < datetime.timedelta(hours=1)
    assert Reservation.objects.get(run=run).status == Reservation.Status.RELEASED


@pytest.mark.django_db(transaction=True)
def test_a_current_version_without_an_authority_key_identifier_is_renewed(
    organization, pebble, bind_dns, settings
):
    """Its ACME Renewal Information id cannot be made: the order names no
    certificate it replaces, and the renewal goes on (it used to raise
    ExtensionNotFound and leave the run running)."""
    settings.ACME_CA_BUNDLE = str(pebble.ca_bundle)
    ca = ca_account(organization, directory_url=pebble.directory_url, price=Decimal("0"))
    cert = dns01_certificate(organization, ca, bind_dns, "noaki.example.test")
    key_pem, cert_pem = self_signed("noaki.example.test")
    assert "AuthorityKeyIdentifier" not in repr(x509.load_pem_x509_certificate(
        cert_pem.encode()).extensions)
    old = CertificateVersion.from_pem(certificate=cert, chain_pem=cert_pem,
                                      private_key_pem=key_pem)
    old.save()
    Certificate.objects.filter(pk=cert.pk).update(
        current_version=old, renew_after=timezone.now() - datetime.timedelta(minutes=1))
    run = renewal.start_run(certificate_id=cert.pk, trigger=RenewalRun.Trigger.SCHEDULE,
                            enqueue=False)

    renewal.execute(run_id=run.pk, inline=True)

    run.refresh_from_db()
    assert run.status == RenewalRun.Status.SUCCEEDED, (run.error, list(run.steps.values()))
    assert run.version_id not in (None, old.pk)
