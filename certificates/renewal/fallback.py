"""A second CA: a certificate's renewals move to its fallback CA account when
its CA fails it for good, or when an administrator moves every certificate away
from a CA (a distrusted CA: one audited action for all of them).

A move changes the certificate's `ca_account` to the fallback, so that
everything a renewal reads from it (the ACME account, its price, reservation
and charge, the deposit forecast, the limits) is the fallback's from then on;
`moved_from_ca_account`, `ca_switch_reason` and `ca_switched_at` say where it
came from and why, for the pages and the API. A move is one guarded UPDATE on
the CA account the certificate had, so two workers cannot move it twice.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from accounts.models import User
from certificates.messages import message
from certificates.models import AuditEvent, CAAccount, CASwitch, Certificate, RenewalRun
from certificates.seams.errors import FailureKind, PortalError
from certificates.steps import Step, StepStatus

logger = logging.getLogger(__name__)

# The failures a CA causes. A permanent one (the CA refuses the account or the
# order, will not issue for the name, its CAA forbids it) moves the certificate
# at once; a transient one (unreachable, internal errors, time-outs, rate
# limits) after CA_FALLBACK_AFTER_FAILURES runs in a row failed so.
CA_KINDS = frozenset({FailureKind.CA_ERROR})
# Problems about the names or the servers rather than the CA: the challenge
# file or record was missing or wrong, the server unreachable for the
# validator. Another CA would fail the same way, so they move nothing.
NOT_THE_CA = frozenset({"unauthorized", "incorrectResponse", "connection", "dns", "tls"})


def fallback_of(certificate: Certificate) -> CAAccount | None:
    """Where `certificate` renews if its CA account fails it: its own fallback,
    else its CA account's; never an abandoned account nor its current one."""
    candidates = [certificate.fallback_ca_account if certificate.fallback_ca_account_id else None,
                  certificate.ca_account.fallback_ca_account
                  if certificate.ca_account.fallback_ca_account_id else None]
    for account in candidates:
        if (account is not None and account.pk != certificate.ca_account_id
                and account.organization_id == certificate.organization_id
                and account.abandoned_at is None):
            return account
    return None


def counts_against_the_ca(kind: str, transient: bool, problem: dict | None) -> bool:
    """Whether a failure of this kind is the CA's (see CA_KINDS, NOT_THE_CA)."""
    if kind not in CA_KINDS:
        return False
    code = ((problem or {}).get("type") or "").rsplit(":", 1)[-1]
    return transient or code not in NOT_THE_CA


def after_failure(run: RenewalRun, exc: PortalError) -> bool:
    """Called once a run's failure is recorded: moves the certificate to its
    fallback if the CA failed it permanently, or transiently
    CA_FALLBACK_AFTER_FAILURES runs in a row; True when it moved (it is then
    due at once, at the fallback)."""
    if run.version_id is not None or not counts_against_the_ca(exc.kind, exc.transient,
                                                               exc.problem):
        return False
    certificate = Certificate.objects.select_related(
        "ca_account__fallback_ca_account", "fallback_ca_account").get(pk=run.certificate_id)
    if certificate.ca_account_id != run_ca_account_id(run, certificate):
        return False  # moved already (by a person, or another run)
    fallback = fallback_of(certificate)
    if fallback is None:
        return False
    if exc.transient and not _failed_in_a_row(certificate):
        return False
    moved = _move(certificate, fallback, CASwitch.PRIMARY_FAILED)
    if moved:
        run.step(Step.ORDER, StepStatus.FAILED, message(
            "run.fallback_used", to=fallback.name, **{"from": certificate.ca_account.name}))
        AuditEvent.record(None, action=AuditEvent.Action.CA_FALLBACK_USED,
                          organization=certificate.organization, certificate=certificate,
                          subject=certificate.common_name,
                          params={"from": certificate.ca_account.name, "to": fallback.name,
                                  "run": run.pk, "kind": str(exc.kind)})
    return moved


def run_ca_account_id(run: RenewalRun, certificate: Certificate) -> int:
    """The CA account the run ordered from: its reservation's, else the
    certificate's (a free CA reserves nothing)."""
    held = getattr(run, "reservation", None) if run.pk else None
    return held.ca_account_id if held is not None else certificate.ca_account_id


def _failed_in_a_row(certificate: Certificate) -> bool:
    """The last CA_FALLBACK_AFTER_FAILURES runs failed at the CA, all of them at
    the CA account it has now (runs before an earlier move were at another)."""
    needed = max(int(settings.CA_FALLBACK_AFTER_FAILURES), 1)
    runs = RenewalRun.objects.filter(certificate=certificate, status__in=RenewalRun.FINAL)
    if certificate.ca_switched_at is not None:
        runs = runs.filter(created_at__gte=certificate.ca_switched_at)
    last = list(runs.order_by("-created_at", "-pk").values_list("failure_kind",
                                                                 flat=True)[:needed])
    return len(last) == needed and all(kind in CA_KINDS for kind in last)


def _move(certificate: Certificate, fallback: CAAccount, reason: str, *,
          renew_now: bool = False) -> bool:
    """One guarded UPDATE from the CA account the certificate has to `fallback`;
    the profile is kept where the fallback lists it."""
    now = timezone.now()
    profile = certificate.profile if certificate.profile in fallback.profile_names() else ""
    due = {"renew_after": now, "next_attempt_at": None} if renew_now else {
        "next_attempt_at": now}
    moved = Certificate.objects.filter(
        pk=certificate.pk, ca_account_id=certificate.ca_account_id).update(
        ca_account=fallback, moved_from_ca_account=certificate.ca_account_id,
        ca_switch_reason=reason, ca_switched_at=now, fallback_ca_account=None,
        profile=profile, failure_count=0, held_for_deposit=False, **due)
    if moved:
        logger.info("certificate %s moved from CA account %s to %s (%s)", certificate.pk,
                    certificate.ca_account_id, fallback.pk, reason)
    return bool(moved)


@dataclass
class MoveAway:
    """What moving the certificates away from a CA account did."""

    moved: list[int] = field(default_factory=list)
    # Certificates with no fallback to go to: they stay, and a person must act.
    stranded: list[int] = field(default_factory=list)


def certificates_of(ca_account: CAAccount) -> list[Certificate]:
    return list(Certificate.objects.filter(ca_account=ca_account).select_related(
        "ca_account__fallback_ca_account", "fallback_ca_account", "organization")
        .order_by("pk"))


def move_away(*, ca_account: CAAccount, by: User | None, request: object = None) -> MoveAway:
    """The distrust case: every certificate of `ca_account` renews at its
    fallback from now on, at once; the account is marked abandoned, so that
    nothing falls back to it. One audit entry for the whole action."""
    result = MoveAway()
    with transaction.atomic():
        # The first time it was abandoned stays (a second action moves what is left).
        CAAccount.objects.filter(pk=ca_account.pk, abandoned_at__isnull=True).update(
            abandoned_at=timezone.now())
        for certificate in certificates_of(ca_account):
            fallback = fallback_of(certificate)
            if fallback is not None and _move(certificate, fallback, CASwitch.MOVED_AWAY,
                                              renew_now=True):
                result.moved.append(certificate.pk)
            else:
                result.stranded.append(certificate.pk)
        AuditEvent.record(request, action=AuditEvent.Action.CA_MOVED_AWAY,
                          organization=ca_account.organization, subject=ca_account.name,
                          user=by, params={"moved": len(result.moved),
                                           "stranded": len(result.stranded)})
    return result


def stranded_count(ca_account: CAAccount) -> int:
    """How many of the account's certificates have nowhere to go (for the page):
    one COUNT, the rule of `fallback_of` as a query, since an account may hold
    thousands of certificates."""
    account_fallback = ca_account.fallback_ca_account if ca_account.fallback_ca_account_id \
        else None
    if (account_fallback is not None and account_fallback.pk != ca_account.pk
            and account_fallback.organization_id == ca_account.organization_id
            and account_fallback.abandoned_at is None):
        return 0
    own = Q(fallback_ca_account__isnull=False,
            fallback_ca_account__abandoned_at__isnull=True,
            fallback_ca_account__organization_id=F("organization_id")) & ~Q(
        fallback_ca_account=F("ca_account"))
    return Certificate.objects.filter(ca_account=ca_account).exclude(own).count()

