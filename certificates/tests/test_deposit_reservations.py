"""The deposit never overdraws: each run reserves the price, with the CA
account's row locked, before it places an ACME order; the reservation is settled
into the one charge when a version is issued and released when none is.

The race test runs on PostgreSQL (row locks); CI runs it there, and without
PostgreSQL it fails under CI rather than skip."""

import threading
from decimal import Decimal

import pytest
from django.db import connection

from certificates import renewal
from certificates.models import (
    Certificate,
    DepositEntry,
    RenewalRun,
    Reservation,
)
from certificates.renewal import deposit
from certificates.tests.factories import ca_account, dns01_certificate


def running_balances(ca):
    """The balance after each ledger entry, in the order they were written."""
    balances, total = [], Decimal("0")
    for amount in DepositEntry.objects.filter(ca_account=ca).order_by("pk").values_list(
            "amount", flat=True):
        total += amount
        balances.append(total)
    return balances


@pytest.mark.django_db(transaction=True)  # each thread commits on its own connection
def test_renewals_started_together_on_a_deposit_for_fewer_charge_only_what_it_covers(
    postgresql_only, organization, pebble, bind_dns, settings
):
    settings.ACME_CA_BUNDLE = str(pebble.ca_bundle)
    started, covered = 4, 2
    ca = ca_account(organization, directory_url=pebble.directory_url, price=Decimal("1100"))
    deposit.top_up(ca_account=ca, amount=Decimal("2500"), note="covers two")
    certs = [dns01_certificate(organization, ca, bind_dns, [f"race{i}.example.test"])
             for i in range(started)]
    runs = [renewal.start_run(certificate_id=cert.pk, trigger=RenewalRun.Trigger.SCHEDULE,
                              enqueue=False) for cert in certs]
    gate = threading.Barrier(started)
    errors = []

    def renew(run_id):
        try:
            gate.wait(timeout=60)  # every deposit check at the same moment
            renewal.execute(run_id=run_id, inline=True)
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=renew, args=(run.pk,)) for run in runs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    outcomes = sorted(RenewalRun.objects.filter(pk__in=[r.pk for r in runs])
                      .values_list("status", flat=True))
    assert outcomes == sorted([RenewalRun.Status.SUCCEEDED] * covered
                              + [RenewalRun.Status.INSUFFICIENT_DEPOSIT] * (started - covered))
    assert DepositEntry.objects.filter(ca_account=ca, kind=DepositEntry.Kind.CHARGE).count() \
        == covered
    assert min(running_balances(ca)) >= 0
    assert ca.balance() == Decimal("300")
    held = RenewalRun.objects.filter(pk__in=[r.pk for r in runs],
                                     status=RenewalRun.Status.INSUFFICIENT_DEPOSIT)
    assert not held.exclude(acme_order_url="").exists()  # nothing ordered for them
    assert list(Reservation.objects.filter(ca_account=ca).values_list("status", flat=True)) \
        == [Reservation.Status.SETTLED] * covered
    assert ca.reserved() == 0


@pytest.mark.django_db
def test_an_open_reservation_counts_as_spent_for_the_next_renewal_and_the_forecast(
    organization,
):
    ca = ca_account(organization, price=Decimal("1100"), low_balance_threshold=Decimal("0"))
    deposit.top_up(ca_account=ca, amount=Decimal("2000"))
    first, second = (
        RenewalRun.objects.create(
            certificate=Certificate.objects.create(organization=organization, ca_account=ca,
                                                   common_name=name, sans=[name]),
            trigger=RenewalRun.Trigger.SCHEDULE)
        for name in ("a.example.test", "b.example.test"))

    assert deposit.reserve(run=first) == 0
    assert deposit.reserve(run=first) == 0  # taken up again: the same hold, not a second
    assert deposit.reserve(run=second) == Decimal("200")
    assert ca.balance() == Decimal("2000") and ca.available() == Decimal("900")
    outlook = deposit.forecast(ca)
    assert outlook.reserved == Decimal("1100") and outlook.available == Decimal("900")
    assert outlook.is_low(Decimal("1000"))
    assert deposit.shortfall(ca) == Decimal("200")

    deposit.release(run=first)
    assert ca.available() == Decimal("2000")
    assert deposit.reserve(run=second) == 0


@pytest.mark.django_db
def test_a_reservation_left_by_a_run_that_ended_is_released_by_the_recovery_pass(
    organization, monkeypatch
):
    from certificates import tasks

    monkeypatch.setattr(tasks.renew, "delay", lambda run_id: None)
    ca = ca_account(organization, price=Decimal("1100"))
    deposit.top_up(ca_account=ca, amount=Decimal("1100"))
    cert = Certificate.objects.create(organization=organization, ca_account=ca,
                                      common_name="gone.example.test")
    run = RenewalRun.objects.create(certificate=cert, trigger=RenewalRun.Trigger.SCHEDULE)
    assert deposit.reserve(run=run) == 0
    # The worker died after ending the run and before releasing what it held.
    RenewalRun.objects.filter(pk=run.pk).update(status=RenewalRun.Status.FAILED)

    renewal.recover_stale_runs()

    assert Reservation.objects.get(run=run).status == Reservation.Status.RELEASED
    assert ca.available() == Decimal("1100")


@pytest.mark.django_db
def test_money_given_back_by_a_run_that_issued_nothing_starts_a_held_renewal_again(
    organization,
):
    ca = ca_account(organization, price=Decimal("1100"))
    deposit.top_up(ca_account=ca, amount=Decimal("1100"))
    failing, held = (Certificate.objects.create(organization=organization, ca_account=ca,
                                                common_name=name, sans=[name])
                     for name in ("a.example.test", "b.example.test"))
    run = RenewalRun.objects.create(certificate=failing, trigger=RenewalRun.Trigger.SCHEDULE)
    assert deposit.reserve(run=run) == 0
    Certificate.objects.filter(pk=held.pk).update(held_for_deposit=True, next_attempt_at=None)

    deposit.release(run=run)

    held.refresh_from_db()
    assert held.held_for_deposit is False and held.next_attempt_at is not None
