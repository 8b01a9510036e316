"""Discovery: scan addresses and ports, read files on an enrolled host (each
queued for a worker, its progress on a page of its own), and review the
findings (accept into the inventory, or dismiss)."""

from django import forms
from django.conf import settings
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.db import transaction
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_POST

from accounts.models import Role
from accounts.tenancy import get_scoped_or_404, scoped

from ..inventory import discovery, discovery_runs
from ..models import AuditEvent, Discovery, InventoryCertificate, TargetHost
from .common import enter, portal_view, require, roles

FINDINGS_SHOWN = 200
RECENT_SHOWN = 5


class ScanForm(forms.Form):
    targets = forms.CharField(
        label=gettext_lazy("Addresses, names or ranges"), max_length=4000,
        widget=forms.Textarea(attrs={"rows": 3, "spellcheck": "false"}),
        help_text=gettext_lazy("e.g. www.example.com, 192.0.2.10, 192.0.2.0/28 or "
                               "192.0.2.1-192.0.2.20"))
    ports = forms.CharField(label=gettext_lazy("Ports"), max_length=200, required=False)
    names = forms.CharField(
        label=gettext_lazy("More SNI names"), max_length=4000, required=False,
        widget=forms.Textarea(attrs={"rows": 2, "spellcheck": "false"}),
        help_text=gettext_lazy("Names to ask for besides those of the organisation's known "
                               "certificates."))

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        allowed = ", ".join(str(p) for p in settings.DISCOVERY_PORTS)
        self.fields["ports"].help_text = _(
            "Among %(ports)s; blank: all of them. 25, 587, 143 and 110 are asked with "
            "STARTTLS; another port may name its protocol, e.g. 2525/smtp.") % {
            "ports": allowed}


class HostFilesForm(forms.Form):
    host = forms.ModelChoiceField(label=gettext_lazy("Host"), queryset=TargetHost.objects.none())
    paths = forms.CharField(
        label=gettext_lazy("Paths"), max_length=4000,
        widget=forms.Textarea(attrs={"rows": 2, "spellcheck": "false"}),
        help_text=gettext_lazy("Files or folders, one per line, e.g. /etc/nginx/ssl"))

    def __init__(self, *args, organization, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["host"].queryset = TargetHost.objects.filter(
            organization=organization, transport=TargetHost.Transport.SSH,
            host_key_confirmed_at__isnull=False).exclude(host_key="").order_by("name")


def _add_errors(form, exc: ValidationError) -> None:
    for field, errors in exc.message_dict.items():
        form.add_error(field if field in form.fields else None, errors)


def _start(request, scan_form, files_form) -> Discovery | None:
    """Queues whichever discovery was posted; None when its form is refused
    (nothing is saved then)."""
    try:
        if "scan" in request.POST and scan_form.is_valid():
            data = scan_form.cleaned_data
            started = discovery_runs.start(
                request.organization, by=request.user, targets_text=data["targets"],
                ports_text=data["ports"], names=data["names"].split())
        elif "read" in request.POST and files_form.is_valid():
            data = files_form.cleaned_data
            started = discovery_runs.start(request.organization, by=request.user,
                                           host=data["host"], paths=data["paths"].split())
        else:
            return None
    except ValidationError as exc:
        _add_errors(scan_form if "scan" in request.POST else files_form, exc)
        return None
    AuditEvent.record(request, action=AuditEvent.Action.DISCOVERY_STARTED,
                      subject=str(started), params={"kind": started.kind})
    return started


@portal_view
def discovery_page(request):
    organization = request.organization
    posted = request.method == "POST"
    scan_form = ScanForm(request.POST if posted and "scan" in request.POST else None)
    files_form = HostFilesForm(request.POST if posted and "read" in request.POST else None,
                               organization=organization)
    if posted:
        require(request, Role.OPERATOR)
        with transaction.atomic():
            started = _start(request, scan_form, files_form)
        if started is not None:
            return redirect("certificates:discovery_run", started.pk)
    found = scoped(InventoryCertificate, request.user).filter(
        organization=organization, status=InventoryCertificate.Status.FOUND
    ).defer("private_key", "chain_pem").order_by("expires_at")
    return render(request, "certificates/discovery.html", {
        "scan_form": scan_form, "files_form": files_form,
        "findings": found[:FINDINGS_SHOWN], "findings_count": found.count(),
        "recent": scoped(Discovery, request.user).filter(organization=organization)
        .select_related("host")[:RECENT_SHOWN],
        **roles(request),
    })


@portal_view
def discovery_run(request, pk):
    """One discovery's progress: found so far, checked of total; the page
    reloads itself while it runs, and can be left and come back to."""
    run = get_scoped_or_404(Discovery.objects.select_related("organization", "host",
                                                             "requested_by"),
                            request.user, pk=pk)
    enter(request, run.organization)
    findings = run.findings.defer("private_key", "chain_pem").order_by("expires_at", "pk")
    return render(request, "certificates/discovery_run.html", {
        "run": run, "findings": findings[:FINDINGS_SHOWN],
        "findings_count": findings.count(),
        "errors": [discovery_runs.describe_error(error) for error in run.errors],
        **roles(request),
    })


@require_POST
@portal_view
def discovery_review(request):
    require(request, Role.OPERATOR)
    ids = [int(v) for v in request.POST.getlist("finding") if v.isascii() and v.isdigit()]
    rows = list(scoped(InventoryCertificate, request.user).filter(
        organization=request.organization, pk__in=ids))
    if request.POST.get("action") == "accept":
        count = discovery.accept(rows)
        messages.success(request, _("%(count)d certificates accepted into the inventory.")
                         % {"count": count})
    else:
        count = discovery.dismiss(rows)
        messages.success(request, _("%(count)d findings dismissed.") % {"count": count})
    return redirect("certificates:discovery")
