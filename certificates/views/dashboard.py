"""The dashboard: counts by state, the expiry timeline, deposits, recent runs and
the problems that need a person, each with the way to fix it. An organisation
without certificates gets the steps to its first one instead (``setup``).
Archived certificates are left out of all of it.

The number of queries does not grow with the number of certificates: counts are
one aggregate, the timeline one query (grouped by week in the database for a
large fleet, see ``timeline``), each list is sliced.
"""

from django.db.models import OuterRef, Q, Subquery
from django.shortcuts import render
from django.utils import timezone

from accounts.tenancy import scoped
from certificates import states
from certificates.messages import Message
from certificates.renewal import deposit

from ..inventory import listing
from ..inventory.endpoint_problems import open_problems
from ..models import (
    AgentState,
    CAAccount,
    Certificate,
    Deployment,
    DNSCredential,
    Heartbeat,
    InventoryCertificate,
    MonitoredEndpoint,
    RenewalRun,
    TargetHost,
)
from . import timeline, timeline_range
from .common import portal_view, roles

PROBLEMS_SHOWN = 5


def deposit_cards(ca_accounts):
    cards = []
    for account in ca_accounts:
        outlook = deposit.forecast(account)
        cards.append({
            "account": account,
            "forecast": outlook,
            "low": outlook.is_low(account.low_balance_threshold),
            "empty": account.is_priced() and outlook.available < account.price,
        })
    return cards


def _failing(certificates, now):
    last_failed = RenewalRun.objects.filter(
        certificate=OuterRef("pk"), status__in=RenewalRun.UNSUCCESSFUL,
    ).order_by("-created_at", "-pk")
    return (
        states.filter_state(certificates, states.State.FAILING, now)
        .annotate(last_run_id=Subquery(last_failed.values("pk")[:1]),
                  last_error=Subquery(last_failed.values("error")[:1]),
                  last_error_key=Subquery(last_failed.values("error_key")[:1]),
                  last_error_params=Subquery(last_failed.values("error_params")[:1]))
        .order_by("expires_at", "common_name")
    )


def setup(organization, ca_accounts: int) -> dict:
    """What an organisation without certificates has done of the steps to its
    first one (two queries, only then): a CA account, somewhere to prove the
    names (a host for HTTP-01, a DNS credential for DNS-01) and the certificate."""
    hosts = TargetHost.objects.filter(organization=organization).exists()
    credentials = DNSCredential.objects.filter(organization=organization).exists()
    return {"ca_account": ca_accounts > 0, "host": hosts, "dns_credential": credentials,
            "ready": ca_accounts > 0 and (hosts or credentials)}


def with_error_messages(failing):
    """Each failing certificate with its last error as a message, read in the
    reader's language."""
    for certificate in failing:
        certificate.last_error_message = Message(
            certificate.last_error_key or "", certificate.last_error_params or {},
            certificate.last_error or "")
    return failing


def _not_served(organization):
    return (
        Deployment.objects.filter(certificate__organization=organization,
                                  certificate__archived_at__isnull=True)
        .filter(Q(served=False) | Q(last_status__in=[Deployment.Status.FAILED,
                                                      Deployment.Status.ROLLED_BACK]))
        .select_related("certificate", "host")
        .order_by("certificate__common_name", "host__name")
    )


@portal_view
def dashboard(request):
    now = timezone.now()
    organization = request.organization
    certificates = (scoped(Certificate, request.user).filter(organization=organization)
                    .filter(Certificate.active()))
    counts = states.counts(certificates, now)
    shown = timeline_range.choose(request.GET.get("range", ""), certificates,
                                  timezone.localtime(now))
    unmanaged = (scoped(InventoryCertificate, request.user).filter(organization=organization)
                 .filter(InventoryCertificate.unadopted()))
    elsewhere = listing.counts(organization, now, expiring_days=states.EXPIRING_DAYS,
                               horizon=shown.end)
    shown = timeline_range.stretch(shown, elsewhere["latest"])
    marks = timeline.rows(certificates, now=now, end=shown.end, unmanaged=unmanaged)
    endpoint_problems = MonitoredEndpoint.objects.filter(
        organization=organization, result__in=[MonitoredEndpoint.Result.PROBLEM,
                                               MonitoredEndpoint.Result.UNREACHABLE]).count()
    ca_accounts = scoped(CAAccount, request.user).filter(organization=organization)
    cards = deposit_cards(ca_accounts)
    total = sum(counts.values())
    failing = _failing(certificates, now)
    not_served = _not_served(organization)
    # Told by the periodic checks (and cleared by the agent's next check-in):
    # the dashboard and the mail agree on who is silent.
    silent = (AgentState.objects.filter(host__organization=organization,
                                        silence_alerted_at__isnull=False)
              .select_related("host").order_by("last_seen"))
    endpoints = open_problems(organization, now)
    return render(request, "certificates/dashboard.html", {
        "scheduler_stale": Heartbeat.is_stale(),
        "setup": None if total else setup(organization, len(cards)),
        "counts": [(state, counts[state.value]) for state in states.State],
        "total": total,
        "timeline": timeline.render(marks, now=now, end=shown.end),
        "timeline_range": shown,
        "timeline_marks": timeline.count(marks),
        "timeline_grouped": timeline.grouped(marks),
        "expire_later": shown.later + (elsewhere["later"] if shown.key != timeline_range.ALL
                                       else 0),
        "elsewhere": elsewhere,
        "endpoint_problems": endpoint_problems,
        "deposit_cards": cards,
        "runs": scoped(RenewalRun, request.user)
        .filter(certificate__organization=organization)
        .select_related("certificate", "requested_by")[:10],
        "failing": with_error_messages(list(failing[:PROBLEMS_SHOWN])),
        "failing_count": counts[states.State.FAILING],
        "not_served": not_served[:PROBLEMS_SHOWN],
        "not_served_count": not_served.count(),
        "low_deposits": [card for card in cards if card["low"]],
        "silent_agents": silent[:PROBLEMS_SHOWN],
        "endpoint_issues": endpoints[:PROBLEMS_SHOWN],
        "endpoint_issues_count": endpoints.count(),
        **roles(request),
    })
