"""The state of a certificate, derived from its rows and never stored.

One ``Case`` expression gives every certificate exactly one state, the most
urgent that applies, so the dashboard's counts add up to the number of
certificates and each count links to a list filter that finds the same rows.
Counting is one aggregate query; filtering is a WHERE on the same expression.

"Has an open run" is ``id IN (SELECT certificate_id ... WHERE status IN open)``:
a subquery that does not refer to the outer row, so PostgreSQL runs it once
(an index-only scan of the partial unique index ``one_open_run_per_certificate``)
and probes a hash for each certificate, instead of one correlated EXISTS per
certificate. Counting groups by the state, so the ``Case`` is evaluated once per
row rather than once per state.
"""

import datetime

from django.db import models
from django.db.models import Case, Count, Q, Value, When
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from .models import Certificate, RenewalRun

EXPIRING_DAYS = 30


class State(models.TextChoices):
    # Declared from the most to the least urgent; `conditions` says which wins.
    EXPIRED = "expired", _("Expired")
    RENEWING = "renewing", _("Renewing")
    FAILING = "failing", _("Failing")
    NEW = "new", _("Not issued yet")
    DUE = "due", _("Due for renewal")
    EXPIRING = "expiring", _("Expiring within 30 days")
    VALID = "valid", _("Valid")


def _open_run() -> Q:
    # Uncorrelated on purpose (see the module's docstring); at most one open run
    # per certificate (a constraint), and few in all, so the set stays small.
    return Q(pk__in=RenewalRun.objects.filter(status__in=RenewalRun.OPEN)
             .values("certificate_id"))


def conditions(now=None) -> list[tuple[str, Q]]:
    """(state, condition) in order of precedence; VALID is what remains."""
    now = now or timezone.now()
    return [
        # An open run first: an expired certificate being renewed is renewing (the
        # "expired" alert tells a person it is still served); expired is the rest.
        (State.RENEWING, _open_run()),
        (State.EXPIRED, Q(expires_at__lte=now)),
        # Held for a top-up counts as failing: it will not renew by itself.
        (State.FAILING, Q(failure_count__gt=0) | Q(held_for_deposit=True)),
        (State.NEW, Q(expires_at__isnull=True)),
        (State.DUE, Certificate.due(now)),
        (State.EXPIRING, Q(expires_at__lte=now + datetime.timedelta(days=EXPIRING_DAYS))),
    ]


def state_expression(now=None) -> Case:
    return Case(
        *(When(condition, then=Value(state.value)) for state, condition in conditions(now)),
        default=Value(State.VALID.value),
        output_field=models.CharField(),
    )


def with_state(queryset, now=None):
    """`queryset` of certificates with a `state` column."""
    return queryset.annotate(state=state_expression(now))


def filter_state(queryset, state, now=None):
    if state not in State.values:
        return queryset
    return with_state(queryset, now).filter(state=state)


def counts(queryset, now=None) -> dict[str, int]:
    """{state: number of certificates}, every state present, in one query."""
    totals = dict(
        with_state(queryset, now).order_by().values("state")
        .annotate(number=Count("pk")).values_list("state", "number")
    )
    return {state: totals.get(state, 0) for state in State.values}


def state_of(certificate, now=None) -> str:
    """The state of one certificate (one query), for a page about it."""
    return (with_state(type(certificate).objects.filter(pk=certificate.pk), now)
            .values_list("state", flat=True).first()) or State.VALID.value
