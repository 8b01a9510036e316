"""Server-rendered pages. Every object is fetched through the tenancy helper."""

from django.contrib.auth.decorators import login_required
from django.shortcuts import render

from accounts.tenancy import get_scoped_or_404, scoped

from .models import CAAccount, Certificate, Heartbeat, Order, RenewalRun, TargetHost


@login_required
def dashboard(request):
    certificates = scoped(Certificate, request.user).select_related("ca_account", "organization")
    runs = scoped(RenewalRun, request.user).select_related("certificate")[:10]
    return render(request, "certificates/dashboard.html", {
        "certificates": certificates.order_by("expires_at", "common_name")[:50],
        "ca_accounts": scoped(CAAccount, request.user).select_related("organization"),
        "runs": runs,
        "scheduler_stale": Heartbeat.is_stale(),
    })


@login_required
def certificate_detail(request, pk):
    certificate = get_scoped_or_404(
        Certificate.objects.select_related("ca_account", "organization", "current_version"),
        request.user, pk=pk,
    )
    return render(request, "certificates/certificate_detail.html", {
        "certificate": certificate,
        "versions": certificate.versions.all()[:20],
        "deployments": certificate.deployments.select_related("host", "last_version"),
        "runs": certificate.runs.all()[:20],
    })


@login_required
def host_detail(request, pk):
    host = get_scoped_or_404(TargetHost.objects.select_related("organization"),
                             request.user, pk=pk)
    return render(request, "certificates/host_detail.html", {
        "host": host,
        "deployments": host.deployments.select_related("certificate", "last_version"),
    })


@login_required
def ca_account_detail(request, pk):
    ca_account = get_scoped_or_404(CAAccount.objects.select_related("organization"),
                                   request.user, pk=pk)
    return render(request, "certificates/ca_account_detail.html", {
        "ca_account": ca_account,
        "balance": ca_account.balance(),
        "ledger": ca_account.ledger.select_related("created_by")[:50],
        "orders": ca_account.orders.select_related("certificate")[:50],
    })


@login_required
def order_detail(request, pk):
    order = get_scoped_or_404(Order.objects.select_related("ca_account", "certificate"),
                              request.user, pk=pk)
    return render(request, "certificates/order_detail.html", {"order": order})


@login_required
def run_detail(request, pk):
    run = get_scoped_or_404(RenewalRun.objects.select_related("certificate"),
                            request.user, pk=pk)
    return render(request, "certificates/run_detail.html", {
        "run": run, "steps": run.steps.select_related("host"),
    })
