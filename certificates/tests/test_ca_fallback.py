"""A second CA: renewals carried on through the fallback CA account when the
primary is unreachable (a real worker renewing by itself) or refuses for good,
and when an administrator moves every certificate away from a CA; the
fallback's price and deposit apply. Two Pebbles are the two CAs."""

import datetime
from decimal import Decimal

import pytest
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from django.core.exceptions import ValidationError
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from accounts.tests.factors import reauthenticate
from certificates import renewal
from certificates.models import (
    AuditEvent,
    CASwitch,
    Certificate,
    DepositEntry,
    RenewalRun,
)
from certificates.renewal import deposit, fallback, issuance
from certificates.renewal.scheduling import run_inline
from certificates.seams.acme import AcmeError
from certificates.seams.errors import FailureKind
from certificates.tests.factories import ca_account, certificate, http01_certificate, portal_host
from certificates.tests.pki import CraftedCA, leaf_for
from certificates.tests.waiting import run_of, wait_for


def ended(cert, count):
    def check():
        runs = RenewalRun.objects.filter(certificate=cert)
        return runs.count() >= count and not runs.filter(status__in=RenewalRun.OPEN).exists()
    return check


def issued_by(version, pebble) -> bool:
    """The version's chain ends at this Pebble's root (each Pebble has its own)."""
    chain = x509.load_pem_x509_certificates(version.chain_pem.encode())
    root = x509.load_pem_x509_certificate(pebble.root_pem().encode())
    try:
        chain[-1].verify_directly_issued_by(root)
    except (ValueError, TypeError, InvalidSignature):  # another issuer, or its key
        return False
    return True


def two_cas(organization, primary, second):
    """A priced primary CA account whose fallback is another, with its own price."""
    standby = ca_account(organization, name="Standby CA", directory_url=second.directory_url,
                         price=Decimal("500"))
    main = ca_account(organization, name="Main CA", directory_url=primary.directory_url,
                      price=Decimal("1100"), fallback_ca_account=standby)
    deposit.top_up(ca_account=main, amount=Decimal("5000"))
    deposit.top_up(ca_account=standby, amount=Decimal("5000"))
    return main, standby


def test_an_unreachable_primary_ca_gives_way_to_the_fallback_and_renewals_carry_on(
    celery_processes, organization, pebble_factory, pebble, target_host, settings
):
    primary = pebble_factory()
    settings.ACME_CA_BUNDLE = str(pebble.ca_bundle)  # one listener CA for every Pebble
    main, standby = two_cas(organization, primary, pebble)
    host = portal_host(organization, target_host)
    cert = http01_certificate(organization, main, host, [target_host.name])
    worker = celery_processes.worker(ACME_CA_BUNDLE=pebble.ca_bundle,
                                     DEPLOY_TLS_GRACE_SECONDS=10, CA_FALLBACK_AFTER_FAILURES=2)
    primary.stop()

    # Two failures in a row at the unreachable CA: the second moves the certificate.
    for attempt in (1, 2):
        Certificate.objects.filter(pk=cert.pk).update(next_attempt_at=timezone.now())
        renewal.scan()
        wait_for(ended(cert, attempt), 60, f"failed attempt {attempt}", worker)
        run = run_of(cert)
        assert (run.status, run.failure_kind, run.error_class) == (
            RenewalRun.Status.FAILED, FailureKind.CA_ERROR, "transient")
    cert.refresh_from_db()
    assert (cert.ca_account_id, cert.moved_from_ca_account_id, cert.ca_switch_reason) == (
        standby.pk, main.pk, CASwitch.PRIMARY_FAILED)
    assert cert.next_attempt_at <= timezone.now() and cert.failure_count == 0

    # Due at once: renewed by itself through the fallback, at the fallback's price.
    renewal.scan()
    wait_for(ended(cert, 3), 90, "the renewal through the fallback", worker)
    run = run_of(cert)
    assert run.status == RenewalRun.Status.SUCCEEDED, (run.error, list(run.steps.values()))
    cert.refresh_from_db()
    assert issued_by(cert.current_version, pebble)
    target_host.wait_for_served_leaf(cert.current_version.fingerprint_sha256)
    # And the next renewal stays there.
    Certificate.objects.filter(pk=cert.pk).update(
        renew_after=timezone.now() - datetime.timedelta(seconds=1))
    renewal.scan()
    wait_for(ended(cert, 4), 90, "the next renewal", worker)
    assert run_of(cert).status == RenewalRun.Status.SUCCEEDED
    charges = DepositEntry.objects.filter(kind=DepositEntry.Kind.CHARGE)
    assert list(charges.values_list("ca_account_id", "amount")) == [
        (standby.pk, Decimal("-500")), (standby.pk, Decimal("-500"))]
    assert AuditEvent.objects.filter(action=AuditEvent.Action.CA_FALLBACK_USED,
                                     certificate=cert).count() == 1


@pytest.mark.django_db
def test_a_primary_ca_that_refuses_for_good_gives_way_at_the_first_failure(
    organization, pebble_factory, pebble, target_host, settings
):
    # The primary requires External Account Binding, which the account lacks: a
    # permanent refusal by the CA, whatever one waits.
    primary = pebble_factory(eab_keys={"kid-1": "zWNDZM6eQGHWpSRTPal5eIUYFTu7EajVIoguysqZ9wG"})
    settings.ACME_CA_BUNDLE = str(pebble.ca_bundle)
    main, standby = two_cas(organization, primary, pebble)
    cert = http01_certificate(organization, main, portal_host(organization, target_host),
                              [target_host.name])

    first = run_inline(certificate_id=cert.pk)
    assert (first.status, first.error_class, first.failure_kind) == (
        RenewalRun.Status.FAILED, "permanent", FailureKind.CA_ERROR)
    cert.refresh_from_db()
    assert (cert.ca_account_id, cert.ca_switch_reason) == (standby.pk, CASwitch.PRIMARY_FAILED)

    second = run_inline(certificate_id=cert.pk)
    assert second.status == RenewalRun.Status.SUCCEEDED, (second.error,
                                                          list(second.steps.values()))
    assert issued_by(second.version, pebble)
    assert DepositEntry.objects.get(kind=DepositEntry.Kind.CHARGE).ca_account_id == standby.pk


@pytest.mark.django_db
def test_a_failed_challenge_is_not_the_cas_fault_and_moves_nothing(organization):
    main = ca_account(organization, fallback_ca_account=ca_account(organization, name="B"))
    cert = certificate(organization, main)
    run = RenewalRun.objects.create(certificate=cert, status=RenewalRun.Status.FAILED)
    refused = AcmeError("no file", transient=False,
                        problem={"type": "urn:ietf:params:acme:error:unauthorized"})
    assert fallback.after_failure(run, refused) is False
    cert.refresh_from_db()
    assert cert.ca_account_id == main.pk


@pytest.mark.django_db
def test_moving_away_from_a_ca_is_one_audited_action_for_all_its_certificates(
        client, organization, owner, admin, operator):
    standby = ca_account(organization, name="Standby CA", price=Decimal("500"))
    other = ca_account(organization, name="Other CA")
    distrusted = ca_account(organization, name="Distrusted CA", fallback_ca_account=standby)
    by_account = certificate(organization, distrusted, common_name="a.example.test",
                             sans=["a.example.test"])
    own_fallback = certificate(organization, distrusted, common_name="b.example.test",
                               sans=["b.example.test"], fallback_ca_account=other,
                               renew_after=timezone.now() + datetime.timedelta(days=30))
    url = reverse("certificates:ca_account_move_away", args=[distrusted.pk])

    client.force_login(operator)
    assert client.post(url).status_code == 403
    client.force_login(admin)
    page = client.get(reverse("certificates:ca_account", args=[distrusted.pk]))
    assert b"move-away-submit" in page.content

    # Without a recent sign-in, sent to re-authenticate; nothing moves.
    asked = client.post(url)
    assert asked.status_code == 302 and "reauthenticate" in asked["Location"]
    assert Certificate.objects.filter(ca_account=distrusted).count() == 2
    distrusted.refresh_from_db()
    assert distrusted.abandoned_at is None
    assert not AuditEvent.objects.filter(action=AuditEvent.Action.CA_MOVED_AWAY).exists()

    reauthenticate(client, admin)
    moved = client.post(url)
    assert moved.status_code == 302
    assert moved["Location"] == reverse("certificates:ca_account", args=[distrusted.pk])

    for cert, to in ((by_account, standby), (own_fallback, other)):
        cert.refresh_from_db()
        assert (cert.ca_account_id, cert.moved_from_ca_account_id, cert.ca_switch_reason) == (
            to.pk, distrusted.pk, CASwitch.MOVED_AWAY)
        assert cert.renew_after <= timezone.now()  # replaced now, not at its time
    distrusted.refresh_from_db()
    assert distrusted.abandoned_at is not None
    event = AuditEvent.objects.get(action=AuditEvent.Action.CA_MOVED_AWAY)
    assert (event.user, event.params) == (admin, {"moved": 2, "stranded": 0})
    # Nothing falls back to it any more.
    standby.fallback_ca_account = distrusted
    with pytest.raises(ValidationError, match="moved away"):
        standby.full_clean()
    detail = client.get(reverse("certificates:certificate", args=[by_account.pk]))
    assert "Distrusted CA" in detail.content.decode()
    assert "moved the certificates away" in detail.content.decode()


@pytest.mark.django_db
def test_choosing_the_ca_account_by_hand_clears_the_record_of_the_move(organization):
    standby = ca_account(organization, name="Standby CA")
    main = ca_account(organization, name="Main CA", fallback_ca_account=standby)
    cert = certificate(organization, main)
    Certificate.objects.filter(pk=cert.pk).update(
        ca_account=standby, moved_from_ca_account=main, ca_switched_at=timezone.now(),
        ca_switch_reason=CASwitch.PRIMARY_FAILED)
    cert.refresh_from_db()

    cert.full_clean()  # another change: the move stays on record
    assert cert.ca_switch_reason == CASwitch.PRIMARY_FAILED

    cert.ca_account = main
    cert.full_clean()
    assert (cert.moved_from_ca_account_id, cert.ca_switch_reason, cert.ca_switched_at) == (
        None, "", None)


@pytest.mark.django_db
def test_the_page_counts_the_certificates_that_have_nowhere_to_go(organization):
    standby = ca_account(organization, name="Standby CA")
    gone = ca_account(organization, name="Gone CA", abandoned_at=timezone.now())
    main = ca_account(organization, name="Main CA")
    certificate(organization, main, common_name="a.example.test", sans=["a.example.test"])
    certificate(organization, main, common_name="b.example.test", sans=["b.example.test"],
                fallback_ca_account=standby)
    certificate(organization, main, common_name="c.example.test", sans=["c.example.test"],
                fallback_ca_account=gone)
    assert fallback.stranded_count(main) == 2
    main.fallback_ca_account = standby
    assert fallback.stranded_count(main) == 0


@pytest.mark.django_db
def test_failures_at_the_ca_it_left_do_not_count_against_the_fallback(organization, settings):
    settings.CA_FALLBACK_AFTER_FAILURES = 2
    third = ca_account(organization, name="Third CA")
    standby = ca_account(organization, name="Standby CA", fallback_ca_account=third)
    main = ca_account(organization, name="Main CA", fallback_ca_account=standby)
    cert = certificate(organization, main)
    unreachable = AcmeError("down", transient=True)

    def failed_run():
        return RenewalRun.objects.create(certificate=cert, status=RenewalRun.Status.FAILED,
                                         failure_kind=FailureKind.CA_ERROR)

    assert fallback.after_failure(failed_run(), unreachable) is False
    assert fallback.after_failure(failed_run(), unreachable) is True  # the second in a row
    cert.refresh_from_db()
    assert cert.ca_account_id == standby.pk
    # One failure at the fallback is one, not three.
    assert fallback.after_failure(failed_run(), unreachable) is False
    assert fallback.after_failure(failed_run(), unreachable) is True
    cert.refresh_from_db()
    assert (cert.ca_account_id, cert.moved_from_ca_account_id) == (third.pk, standby.pk)


@pytest.mark.django_db
def test_a_run_that_reserved_before_its_certificate_moved_orders_and_pays_where_it_reserved(
        organization, monkeypatch):
    standby = ca_account(organization, name="Standby CA", price=Decimal("500"))
    main = ca_account(organization, name="Main CA", price=Decimal("1100"),
                      fallback_ca_account=standby)
    deposit.top_up(ca_account=main, amount=Decimal("1100"))
    names = ["www.example.test"]
    cert = Certificate.objects.create(organization=organization, ca_account=main,
                                      common_name=names[0], sans=names, challenge="dns-01")
    run = renewal.start_run(certificate_id=cert.pk, trigger=RenewalRun.Trigger.MANUAL,
                            enqueue=False)
    assert deposit.reserve(run=run) == 0  # held on Main CA
    fallback.move_away(ca_account=main, by=None)  # then an administrator moves it
    ordered_from = []

    def connect(account):
        ordered_from.append(account.name)
        return CraftedCA(lambda csr: leaf_for(csr.public_key(), names))

    monkeypatch.setattr(issuance, "connect_ca", connect)
    monkeypatch.setattr(transaction, "on_commit", lambda func, using=None, robust=False: None)

    renewal.execute(run_id=run.pk)

    assert ordered_from == ["Main CA"]
    charge = DepositEntry.objects.get(kind=DepositEntry.Kind.CHARGE)
    assert (charge.ca_account_id, charge.amount) == (main.pk, Decimal("-1100"))
    cert.refresh_from_db()
    assert cert.ca_account_id == standby.pk  # the next renewal goes to the fallback
