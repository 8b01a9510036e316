"""The prepaid deposit: balance, top-ups, one charge per issued version, and the
forecast of when the money runs out.

Money moves once: every ledger entry carries a unique reference (the issued
version for a charge), so a retried task that charges again hits the unique
constraint instead of the customer's balance.
"""

import bisect
import datetime
import uuid
from dataclasses import dataclass, field
from decimal import Decimal

from django.core.cache import cache
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext as _

from .models import CAAccount, Certificate, CertificateVersion, DepositEntry

HORIZONS = (30, 60, 90)
# Without a version to learn from, a certificate is assumed to renew this often.
DEFAULT_RENEWAL_INTERVAL = datetime.timedelta(days=60)


class DepositError(ValueError):
    pass


def top_up(*, ca_account: CAAccount, amount: Decimal, note: str = "", by=None,
           reference: str = "") -> DepositEntry:
    """An administrator's top-up; renewals held for lack of money start again."""
    amount = Decimal(amount)
    if amount <= 0:
        raise DepositError(_("A top-up amount must be greater than zero."))
    entry = DepositEntry.objects.create(
        ca_account=ca_account, kind=DepositEntry.Kind.TOP_UP, amount=amount, note=note,
        created_by=by, reference=reference or f"topup:{uuid.uuid4()}")
    release_held_renewals(ca_account=ca_account)
    return entry


def charge_for_version(*, version: CertificateVersion) -> DepositEntry | None:
    """Charges the CA account's price for an issued version, once, whatever retries."""
    ca_account = version.certificate.ca_account
    if not ca_account.is_priced():
        return None
    reference = f"charge:version:{version.pk}"
    try:
        with transaction.atomic():
            return DepositEntry.objects.create(
                ca_account=ca_account, kind=DepositEntry.Kind.CHARGE, amount=-ca_account.price,
                reference=reference, note=str(version))
    except IntegrityError:
        return DepositEntry.objects.get(reference=reference)  # charged already


def shortfall(ca_account: CAAccount) -> Decimal:
    """How much is missing to pay one more certificate (0 when it can pay)."""
    if not ca_account.is_priced():
        return Decimal("0")
    return max(ca_account.price - ca_account.balance(), Decimal("0"))


def release_held_renewals(*, ca_account: CAAccount) -> int:
    """Makes certificates held for lack of money due now, if the money is there;
    the next scan (every minute) starts them."""
    if shortfall(ca_account) > 0:
        return 0
    return Certificate.objects.filter(
        ca_account=ca_account, auto_renew=True, held_for_deposit=True,
    ).update(held_for_deposit=False, next_attempt_at=timezone.now())


@dataclass
class Forecast:
    balance: Decimal
    price: Decimal
    # {30: (renewals, cost), 60: ..., 90: ...}
    due: dict = field(default_factory=dict)
    # The day of the first renewal the balance cannot pay, within 90 days.
    runs_out_on: datetime.date | None = None

    @property
    def needed_30d(self) -> Decimal:
        return self.due[30][1]

    def is_low(self, threshold: Decimal) -> bool:
        return self.price > 0 and (self.balance < threshold or self.balance < self.needed_30d)


def forecast(ca_account: CAAccount, *, now=None) -> Forecast:
    """Renewals due in the next 30, 60 and 90 days and their cost, counting every
    renewal of a short-lived certificate inside the horizon, and the date the
    balance runs out."""
    current = now is None
    now = now or timezone.now()
    price, balance = ca_account.price, ca_account.balance()
    dates = _dates_of_this_minute(ca_account, now) if current else _renewal_dates(
        ca_account, now)
    result = Forecast(balance=balance, price=price)
    # The dates are sorted: a bisection per horizon, not a pass over thousands.
    for days in HORIZONS:
        count = bisect.bisect_right(dates, now + datetime.timedelta(days=days))
        result.due[days] = (count, price * count)
    if price > 0:
        # The first renewal the balance cannot pay for.
        affordable = max(int(balance // price), 0) if balance > 0 else 0
        if affordable < len(dates):
            result.runs_out_on = timezone.localtime(dates[affordable]).date()
    return result


def _dates_of_this_minute(ca_account, now):
    """The renewal dates, computed at most once a minute per CA account: the
    dashboard forecasts every CA account on every view, over thousands of
    certificates. The balance they are set against is always current."""
    key = f"deposit-forecast-dates:{ca_account.pk}:{int(now.timestamp() // 60)}"
    dates = cache.get(key)
    if dates is None:
        dates = _renewal_dates(ca_account, now)
        cache.set(key, dates, 120)
    return dates


def _renewal_dates(ca_account, now) -> list[datetime.datetime]:
    """Every renewal in the next 90 days, sorted, repeats of short-lived ones too."""
    horizon = now + datetime.timedelta(days=max(HORIZONS))
    return sorted(_each_renewal(ca_account, now, horizon))


def _each_renewal(ca_account, now, horizon):
    # Plain columns, not model objects: thousands of rows per CA account.
    rows = (
        Certificate.objects.filter(ca_account=ca_account, auto_renew=True)
        .filter(Q(renew_after__lte=horizon) | Q(renew_after__isnull=True)
                | Q(next_attempt_at__lte=horizon))
        .values_list("next_attempt_at", "renew_after", "current_version__not_before",
                     "current_version__not_after")
    )
    for next_attempt_at, renew_after, not_before, not_after in rows.iterator(chunk_size=2000):
        when = max(next_attempt_at or renew_after or now, now)
        interval = _renewal_interval(not_before, not_after)
        while when <= horizon:
            yield when
            when += interval


def _renewal_interval(not_before, not_after) -> datetime.timedelta:
    """The next version will be like this one: renewed as far into its life."""
    if not_before is None:
        return DEFAULT_RENEWAL_INTERVAL
    from .issuance import remaining_at_renewal

    lifetime = not_after - not_before
    return max(lifetime - remaining_at_renewal(lifetime), datetime.timedelta(hours=1))
