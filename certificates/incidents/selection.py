"""Which certificates an incident replaces: a filter over the organisation's
issued certificates, and the preview a person sees before starting it (how
many, on which hosts, and what it costs against each deposit)."""

from __future__ import annotations

import datetime
import re
from dataclasses import dataclass, field
from decimal import Decimal

from django.db.models import Count, QuerySet

from accounts.models import Organization
from certificates.models import CAAccount, Certificate, Deployment


@dataclass
class Filter:
    ca_account_id: int | None = None
    issuer_contains: str = ""
    issued_before: datetime.datetime | None = None
    key_type: str = ""
    name_pattern: str = ""
    tag: str = ""

    @classmethod
    def of(cls, incident: object) -> Filter:
        return cls(**{name: getattr(incident, name) for name in (
            "ca_account_id", "issuer_contains", "issued_before", "key_type", "name_pattern",
            "tag")})


def pattern_regex(pattern: str) -> str:
    """A name pattern (``*`` for any characters, ``?`` for one) as an anchored
    regular expression that PostgreSQL and SQLite both read."""
    parts = []
    for char in pattern.strip().lower():
        parts.append(".*" if char == "*" else "." if char == "?" else re.escape(char))
    return "^" + "".join(parts) + "$"


def matching(organization: Organization, chosen: Filter) -> QuerySet[Certificate]:
    """The organisation's issued certificates that the filter chooses; archived
    ones are no longer in service and are left out."""
    found = Certificate.objects.filter(Certificate.active(), organization=organization,
                                       current_version__isnull=False)
    if chosen.ca_account_id:
        found = found.filter(ca_account_id=chosen.ca_account_id)
    if chosen.issuer_contains:
        found = found.filter(current_version__issuer__icontains=chosen.issuer_contains)
    if chosen.issued_before:
        found = found.filter(current_version__not_before__lt=chosen.issued_before)
    if chosen.key_type:
        found = found.filter(key_type=chosen.key_type)
    if chosen.name_pattern:
        found = found.filter(common_name__iregex=pattern_regex(chosen.name_pattern))
    if chosen.tag:
        tag = re.escape(chosen.tag.strip().lower())
        found = found.filter(tags__regex=rf"(^| ){tag}( |$)")
    return found


@dataclass
class AccountCost:
    ca_account: CAAccount
    count: int
    total: Decimal
    available: Decimal

    @property
    def short(self) -> Decimal:
        if not self.ca_account.is_priced():
            return Decimal("0")
        return max(self.total - self.available, Decimal("0"))


@dataclass
class Preview:
    count: int
    hosts: list[tuple[str, int]] = field(default_factory=list)  # (host name, certificates)
    costs: list[AccountCost] = field(default_factory=list)

    @property
    def can_pay(self) -> bool:
        return all(cost.short == 0 for cost in self.costs)


def preview(organization: Organization, chosen: Filter, *, hosts_shown: int = 50) -> Preview:
    certificates = matching(organization, chosen)
    counts = dict(certificates.values_list("ca_account_id").annotate(n=Count("pk"))
                  .values_list("ca_account_id", "n"))
    costs = []
    for account in CAAccount.objects.filter(pk__in=counts).order_by("name"):
        count = counts[account.pk]
        costs.append(AccountCost(ca_account=account, count=count,
                                 total=account.price * count if account.is_priced()
                                 else Decimal("0"), available=account.available()))
    hosts = list(Deployment.objects.filter(certificate__in=certificates.values("pk"))
                 .values_list("host__name").annotate(n=Count("pk")).order_by("-n", "host__name")
                 .values_list("host__name", "n")[:hosts_shown])
    return Preview(count=sum(counts.values()), hosts=hosts, costs=costs)
