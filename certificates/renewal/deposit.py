"""The prepaid deposit: balance, top-ups, one charge per issued version, and the
forecast of when the money runs out.

Money moves once: every ledger entry carries a unique reference (the issued
version for a charge), so a retried task that charges again hits the unique
constraint instead of the customer's balance.

It never overdraws: a run reserves the price before its ACME order, with the CA
account's row locked while it compares the balance less the open reservations
with the price, so renewals started together cannot all count the same money.
The reservation is settled into the charge when a version is issued and
released when the run ends without one.
"""

from __future__ import annotations

import datetime
import uuid
from dataclasses import dataclass, field
from decimal import Decimal

from django.core.cache import cache
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext as _

from accounts.models import User
from certificates.models import (
    CAAccount,
    Certificate,
    CertificateVersion,
    DepositEntry,
    RenewalRun,
    Reservation,
)
from certificates.renewal import policy

HORIZONS = (30, 60, 90)
# Without a version to learn from, a certificate is assumed to renew this often.
DEFAULT_RENEWAL_INTERVAL = datetime.timedelta(days=60)


class DepositError(ValueError):
    pass


def top_up(*, ca_account: CAAccount, amount: Decimal, note: str = "",
           by: User | None = None, reference: str = "") -> DepositEntry:
    """An administrator's top-up; renewals held for lack of money start again."""
    amount = Decimal(amount)
    if amount <= 0:
        raise DepositError(_("A top-up amount must be greater than zero."))
    entry = DepositEntry.objects.create(
        ca_account=ca_account, kind=DepositEntry.Kind.TOP_UP, amount=amount, note=note,
        created_by=by, reference=reference or f"topup:{uuid.uuid4()}")
    release_held_renewals(ca_account=ca_account)
    return entry


def reserve(*, run: RenewalRun) -> Decimal:
    """Holds the price of `run` on its certificate's CA account before anything is
    ordered; returns how much is missing (0 when it is held, or nothing is to pay).

    The CA account's row is locked for the check and the insert, so two runs
    cannot both find the same money available; on SQLite every write
    transaction is IMMEDIATE, which serialises them the same way. A run taken
    up again keeps the reservation it made the first time."""
    account_of_run = CAAccount.objects.filter(
        pk__in=Certificate.objects.filter(pk=run.certificate_id).values("ca_account_id"))
    if not account_of_run.filter(price__gt=0).exists():
        return Decimal("0")  # a free CA: nothing to hold, and no lock to wait for
    with transaction.atomic():
        account = account_of_run.select_for_update().get()
        held = Reservation.objects.filter(run_id=run.pk).first()
        if held is not None:
            # Open: this run's own hold. Settled: paid already. Released: the run
            # ended; it cannot spend again.
            return Decimal("0") if held.status != Reservation.Status.RELEASED else account.price
        if not account.is_priced():
            return Decimal("0")
        missing = account.price - account.available()
        if missing > 0:
            return missing
        Reservation.objects.create(ca_account=account, run_id=run.pk, amount=account.price)
    return Decimal("0")


def lock_for_many(counts: dict[int, int]) -> tuple[dict[int, Decimal], dict[str, Decimal]]:
    """For many runs reserved at once ({CA account id: how many}; an incident):
    the accounts locked as ``reserve`` locks one, until the caller's transaction
    ends. Returns each account's price (0 when free) and, by account name, what
    is missing to pay for them all (empty when every account can)."""
    prices: dict[int, Decimal] = {}
    missing: dict[str, Decimal] = {}
    for account in CAAccount.objects.select_for_update().filter(pk__in=counts).order_by("pk"):
        prices[account.pk] = account.price if account.is_priced() else Decimal("0")
        short = prices[account.pk] * counts[account.pk] - account.available()
        if prices[account.pk] > 0 and short > 0:
            missing[account.name] = short
    return prices, missing


def reserve_runs(runs: list[tuple[RenewalRun, int]],
                 prices: dict[int, Decimal]) -> dict[str, Decimal]:
    """Holds the price of each (run, CA account id), inside the transaction of
    ``lock_for_many`` that found the money there; returns what it held by the
    accounts' currencies (a sum over currencies would have none). Each run then
    finds its reservation, as a run taken up again does."""
    held = [Reservation(ca_account_id=account_id, run_id=run.pk, amount=prices[account_id])
            for run, account_id in runs if prices.get(account_id, Decimal("0")) > 0]
    Reservation.objects.bulk_create(held, batch_size=1000)
    currency_of = dict(CAAccount.objects.filter(pk__in={r.ca_account_id for r in held})
                       .values_list("pk", "currency"))
    totals: dict[str, Decimal] = {}
    for reservation in held:
        currency = currency_of[reservation.ca_account_id]
        totals[currency] = totals.get(currency, Decimal("0")) + reservation.amount
    return dict(sorted(totals.items()))


def charge_for_version(*, version: CertificateVersion,
                       run: RenewalRun | None = None) -> tuple[DepositEntry | None, bool]:
    """Charges for an issued version, once, whatever retries: the price the run
    reserved (the account's price when it reserved nothing), settling the
    reservation in the same transaction, so that the money is never counted
    both as reserved and as spent, nor as neither. Returns the charge (None
    when there is nothing to pay) and whether this call made it."""
    reference = f"charge:version:{version.pk}"
    held = None
    if run is not None:
        held = Reservation.objects.filter(run_id=run.pk, status=Reservation.Status.OPEN).first()
    if held is None and not CAAccount.objects.filter(
            certificates__pk=version.certificate_id, price__gt=0).exists():
        return None, False  # a free CA, and nothing held: nothing to charge
    with transaction.atomic():
        # The account that holds the reservation pays, locked as a reservation
        # locks it: no one compares balance and reservations between this
        # charge and the settling of its reservation.
        accounts = CAAccount.objects.select_for_update()
        ca_account = accounts.get(pk=held.ca_account_id) if held is not None else accounts.get(
            pk__in=Certificate.objects.filter(pk=version.certificate_id).values("ca_account_id"))
        if held is not None:  # still open, now that nothing else can close it
            held = Reservation.objects.filter(pk=held.pk,
                                              status=Reservation.Status.OPEN).first()
        price = held.amount if held is not None else ca_account.price
        entry = DepositEntry.objects.filter(reference=reference).first()
        created = False
        if entry is None and price > 0:
            try:
                with transaction.atomic():
                    entry = DepositEntry.objects.create(
                        ca_account=ca_account, kind=DepositEntry.Kind.CHARGE, amount=-price,
                        reference=reference, note=str(version))
                    created = True
            except IntegrityError:
                entry = DepositEntry.objects.get(reference=reference)  # charged already
        if held is not None:
            Reservation.objects.filter(pk=held.pk, status=Reservation.Status.OPEN).update(
                status=Reservation.Status.SETTLED, closed_at=timezone.now())
    return entry, created


def release(*, run: RenewalRun) -> bool:
    """Gives back what `run` held, if it still holds it (nothing was issued);
    renewals held for lack of that money start again."""
    held = Reservation.objects.filter(run_id=run.pk, status=Reservation.Status.OPEN).first()
    if held is None or not Reservation.objects.filter(
            pk=held.pk, status=Reservation.Status.OPEN).update(
            status=Reservation.Status.RELEASED, closed_at=timezone.now()):
        return False
    release_held_renewals(ca_account=held.ca_account)
    return True


def close_reservation(*, run: RenewalRun) -> None:
    """When a run ends, whatever its end: an issued version is charged (settling
    the hold), otherwise the hold is released. Nothing stays reserved for a run
    that no longer runs."""
    if not Reservation.objects.filter(run_id=run.pk, status=Reservation.Status.OPEN).exists():
        return
    version = CertificateVersion.objects.filter(
        pk__in=RenewalRun.objects.filter(pk=run.pk).values("version_id")).first()
    if version is not None:
        charge_for_version(version=version, run=run)
    else:
        release(run=run)


def close_reservations_of_ended_runs() -> int:
    """Reservations left open by runs that ended some other way (a worker killed
    between its last write and the release): closed as their run would have."""
    closed = 0
    for run in RenewalRun.objects.filter(
            pk__in=Reservation.objects.filter(status=Reservation.Status.OPEN)
            .values("run_id")).exclude(status__in=RenewalRun.OPEN):
        close_reservation(run=run)
        closed += 1
    return closed


def shortfall(ca_account: CAAccount) -> Decimal:
    """How much is missing to pay one more certificate (0 when it can pay), the
    prices held for renewals under way counted as spent."""
    if not ca_account.is_priced():
        return Decimal("0")
    return max(ca_account.price - ca_account.available(), Decimal("0"))


def release_held_renewals(*, ca_account: CAAccount) -> int:
    """Makes certificates held for lack of money due now, if the money is there;
    the next scan (every minute) starts them."""
    if shortfall(ca_account) > 0:
        return 0
    return Certificate.objects.filter(
        Certificate.active(), ca_account=ca_account, auto_renew=True, held_for_deposit=True,
    ).update(held_for_deposit=False, next_attempt_at=timezone.now())


@dataclass
class Forecast:
    balance: Decimal
    price: Decimal
    # Held for renewals under way: spent as far as the next renewal is concerned.
    reserved: Decimal = Decimal("0")
    # {30: (renewals, cost), 60: ..., 90: ...}
    due: dict[int, tuple[int, Decimal]] = field(default_factory=dict)
    # The day of the first renewal the balance cannot pay, within 90 days.
    runs_out_on: datetime.date | None = None

    @property
    def available(self) -> Decimal:
        return self.balance - self.reserved

    @property
    def needed_30d(self) -> Decimal:
        return self.due[30][1]

    def is_low(self, threshold: Decimal) -> bool:
        return self.price > 0 and (self.available < threshold
                                   or self.available < self.needed_30d)


def forecast(ca_account: CAAccount, *, now: datetime.datetime | None = None) -> Forecast:
    """Renewals due in the next 30, 60 and 90 days and their cost, counting every
    renewal of a short-lived certificate inside the horizon (288 a day for a
    10-minute certificate renewed halfway), and the date the balance runs out."""
    current = now is None
    now = now or timezone.now()
    price, balance, reserved = ca_account.price, ca_account.balance(), ca_account.reserved()
    renewals = _renewals_of_this_minute(ca_account, now) if current else _renewals(
        ca_account, now)
    result = Forecast(balance=balance, price=price, reserved=reserved)
    for days in HORIZONS:
        count = _count_until(renewals, (now + datetime.timedelta(days=days)).timestamp())
        result.due[days] = (count, price * count)
    if price > 0:
        # The first renewal the balance cannot pay for.
        available = balance - reserved
        affordable = max(int(available // price), 0) if available > 0 else 0
        if affordable < result.due[max(HORIZONS)][0]:
            when = _time_of_renewal(renewals, affordable, now)
            result.runs_out_on = timezone.localtime(when).date()
    return result


# Each certificate renews at ``first`` and every ``every`` seconds after it (POSIX
# seconds): counted by arithmetic rather than listed, so that a certificate that
# renews every few minutes costs no more than one that renews every two months.
Renewals = list[tuple[float, float]]


def _count_until(renewals: Renewals, until: float) -> int:
    """How many renewals fall at or before ``until``."""
    return sum(int((until - first) // every) + 1 for first, every in renewals if first <= until)


def _time_of_renewal(renewals: Renewals, index: int,
                     now: datetime.datetime) -> datetime.datetime:
    """When the renewal at ``index`` (from 0, in time order) falls, to the second:
    a bisection on the count, within the horizon."""
    low, high = now.timestamp(), (now + datetime.timedelta(days=max(HORIZONS))).timestamp()
    while high - low > 1:
        middle = (low + high) / 2
        if _count_until(renewals, middle) > index:
            high = middle
        else:
            low = middle
    return datetime.datetime.fromtimestamp(high, tz=datetime.UTC)


def _renewals_key(ca_account_id: int, now: datetime.datetime) -> str:
    return f"deposit-forecast-renewals:{ca_account_id}:{int(now.timestamp() // 60)}"


def forget_renewals(ca_account_id: int) -> None:
    """Drops this minute's renewals of the CA account, so that the next forecast
    counts a certificate that was just archived or restored as it now is."""
    cache.delete(_renewals_key(ca_account_id, timezone.now()))


def _renewals_of_this_minute(ca_account: CAAccount, now: datetime.datetime) -> Renewals:
    """The renewals, computed at most once a minute per CA account: the dashboard
    forecasts every CA account on every view, over thousands of certificates.
    The balance they are set against is always current."""
    key = _renewals_key(ca_account.pk, now)
    renewals = cache.get(key)
    if renewals is None:
        renewals = _renewals(ca_account, now)
        cache.set(key, renewals, 120)
    return renewals


def _renewals(ca_account: CAAccount, now: datetime.datetime) -> Renewals:
    """(first renewal, interval) of every certificate renewing in the next 90 days."""
    horizon = now + datetime.timedelta(days=max(HORIZONS))
    # Plain columns, not model objects: thousands of rows per CA account.
    rows = (
        Certificate.objects.filter(Certificate.active(), ca_account=ca_account, auto_renew=True)
        .filter(Q(renew_after__lte=horizon) | Q(renew_after__isnull=True)
                | Q(next_attempt_at__lte=horizon))
        .values_list("next_attempt_at", "renew_after", "current_version__not_before",
                     "current_version__not_after")
    )
    renewals: Renewals = []
    for next_attempt_at, renew_after, not_before, not_after in rows.iterator(chunk_size=2000):
        when = max(next_attempt_at or renew_after or now, now)
        if when <= horizon:
            every = _renewal_interval(not_before, not_after).total_seconds()
            renewals.append((when.timestamp(), every))
    return renewals


def _renewal_interval(not_before: datetime.datetime | None,
                      not_after: datetime.datetime | None) -> datetime.timedelta:
    """The next version will be like this one: renewed as far into its life,
    however short that is (a second at the least, for a count that ends)."""
    if not_before is None or not_after is None:  # no version (its dates come together)
        return DEFAULT_RENEWAL_INTERVAL
    lifetime = not_after - not_before
    return max(lifetime - policy.remaining_at_renewal(lifetime), datetime.timedelta(seconds=1))
