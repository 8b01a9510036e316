"""Incidents: the list, a new one (filter, preview, start), its live progress
with pause and resume, and its report as CSV. Starting, pausing and resuming
are for administrators, after re-authentication for the start (it reserves
money and orders every replacement)."""

import csv
from decimal import Decimal

from django.contrib import messages
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_http_methods, require_POST

from accounts.models import Role
from accounts.signin import ensure_recent_authentication
from accounts.tenancy import get_scoped_or_404

from ..forms import IncidentForm
from ..incidents import service
from ..incidents.selection import Filter, preview
from ..models import CAAccount, Incident, IncidentCertificate
from .common import enter, paginate, portal_view, require, roles

FAILURES_SHOWN = 50


def _fetch(request, pk) -> Incident:
    incident = get_scoped_or_404(Incident.objects.select_related("organization", "ca_account"),
                                 request.user, pk=pk)
    enter(request, incident.organization)
    return incident


@portal_view
def incident_list(request):
    incidents = Incident.objects.filter(organization=request.organization)
    return render(request, "certificates/incident_list.html", {
        "page": paginate(request, incidents), **roles(request)})


def _filter_of(form) -> Filter:
    data = form.cleaned_data
    return Filter(ca_account_id=data["ca_account"].pk if data["ca_account"] else None,
                  issuer_contains=data["issuer_contains"], issued_before=data["issued_before"],
                  key_type=data["key_type"], name_pattern=data["name_pattern"], tag=data["tag"])


@require_http_methods(["GET", "POST"])
@portal_view
def incident_create(request):
    """The filter first; "Preview" shows how many, which hosts and the price
    against each deposit; "Start" (after the preview) starts it."""
    require(request, Role.ADMIN)
    organization = request.organization
    form = IncidentForm(request.POST or None, organization=organization)
    shown, error = None, ""
    if request.method == "POST" and form.is_valid():
        chosen = _filter_of(form)
        if request.POST.get("start") == "1":
            ensure_recent_authentication(request)
            data = form.cleaned_data
            try:
                incident = service.start(
                    organization=organization, name=data["name"], chosen=chosen,
                    deadline=data["deadline"], revoke_old=data["revoke_old"],
                    revocation_reason=data["revocation_reason"], by=request.user,
                    request=request)
            except service.IncidentRefused as exc:
                error = str(exc)
            else:
                messages.success(request, _("Incident started."))
                return redirect("certificates:incident", incident.pk)
        shown = preview(organization, chosen)
    return render(request, "certificates/incident_form.html", {
        "form": form, "preview": shown, "error": error, "now": timezone.now(),
        **roles(request)}, status=409 if error else 200)


@portal_view
def incident_detail(request, pk):
    incident = _fetch(request, pk)
    failing = (IncidentCertificate.objects.filter(incident=incident, replaced_at__isnull=True,
                                                  failures__gt=0)
               .select_related("certificate").order_by("-failures", "pk")[:FAILURES_SHOWN])
    return render(request, "certificates/incident_detail.html", {
        "incident": incident, "progress": service.progress(incident), "failing": failing,
        "reserved": _reserved(incident), **roles(request)})


def _reserved(incident) -> list[tuple[Decimal, str]]:
    """What the incident held on the deposit, as (amount, currency) to format
    each in its currency's way: by currency as recorded at its start, or, for an
    incident from before that was recorded, its sum in the currency its CA
    accounts share (a sum over several currencies has none: the bare figure)."""
    if incident.reserved_by_currency:
        return [(Decimal(amount), currency)
                for currency, amount in incident.reserved_by_currency.items()]
    currencies = set(CAAccount.objects.filter(
        certificates__incident_items__incident=incident).values_list("currency", flat=True)
        .distinct()[:2])
    return [(incident.reserved, currencies.pop() if len(currencies) == 1 else "")]


@require_POST
@portal_view
def incident_pause(request, pk):
    incident = _fetch(request, pk)
    require(request, Role.ADMIN)
    if not service.pause(incident, by=request.user, request=request):
        messages.info(request, _("The incident is not running."))
    return redirect("certificates:incident", incident.pk)


@require_POST
@portal_view
def incident_resume(request, pk):
    incident = _fetch(request, pk)
    require(request, Role.ADMIN)
    if not service.resume(incident, by=request.user, request=request):
        messages.info(request, _("The incident is not paused."))
    return redirect("certificates:incident", incident.pk)


@portal_view
def incident_report(request, pk):
    """What was replaced when, one row per certificate."""
    incident = _fetch(request, pk)
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="incident-{incident.pk}.csv"'
    writer = csv.writer(response)
    writer.writerow(service.REPORT_COLUMNS)
    for row in service.report_rows(incident):
        # A cell a spreadsheet would run as a formula is quoted as text.
        writer.writerow(["'" + cell if cell[:1] in "=+-@" else cell for cell in row])
    return response
