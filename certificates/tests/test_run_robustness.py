"""A run always ends, and ends right: an error nobody foresaw fails it with the
error recorded and the usual alert (never "running" until its lease ends), and
a leaf that is not for the order's key and names is neither stored nor paid.

A real CA cannot be made to return a wrong certificate or to raise an error
nobody sorted, so those tests replace the one seam that talks to the CA
(`issuance.connect_ca`); the certificate without an authority key identifier
is renewed against the real Pebble."""

import datetime
from decimal import Decimal

import pytest
from cryptography import x509
from django.utils import timezone

from certificates import renewal
from certificates.models import (
    Certificate,
    CertificateVersion,
    DepositEntry,
    Notification,
    RenewalRun,
    Reservation,
)
from certificates.renewal import deposit, issuance
from certificates.tests.factories import ca_account, dns01_certificate, stored_version
from certificates.tests.pki import CraftedCA, leaf_for, private_key, self_signed

NAMES = ["www.example.test", "example.test"]


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
    "another key": lambda csr: leaf_for(private_key().public_key(), NAMES),
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
    cert = dns01_certificate(organization, ca, bind_dns, ["noaki.example.test"])
    key_pem, cert_pem = self_signed("noaki.example.test")
    assert "AuthorityKeyIdentifier" not in repr(x509.load_pem_x509_certificate(
        cert_pem.encode()).extensions)
    old = stored_version(cert, key_pem, cert_pem)
    Certificate.objects.filter(pk=cert.pk).update(
        current_version=old, renew_after=timezone.now() - datetime.timedelta(minutes=1))
    run = renewal.start_run(certificate_id=cert.pk, trigger=RenewalRun.Trigger.SCHEDULE,
                            enqueue=False)

    renewal.execute(run_id=run.pk, inline=True)

    run.refresh_from_db()
    assert run.status == RenewalRun.Status.SUCCEEDED, (run.error, list(run.steps.values()))
    assert run.version_id not in (None, old.pk)
