"""Monitored endpoints: the list with the form to add one, the page of one with
its history, "check now" and stop watching."""

from django import forms
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_POST

from accounts.models import Role
from accounts.tenancy import get_scoped_or_404, scoped
from fujissl_portal.params import text_param

from ..inventory import monitoring
from ..models import AuditEvent, MonitoredEndpoint
from .common import enter, paginate, portal_view, query_without_page, require, roles

HISTORY_SHOWN = 50


class EndpointForm(forms.Form):
    address = forms.CharField(label=gettext_lazy("Address"), max_length=253,
                              help_text=gettext_lazy("A host name or an IP address."))
    port = forms.IntegerField(label=gettext_lazy("Port"), initial=443, min_value=1,
                              max_value=65535)
    sni_name = forms.CharField(
        label=gettext_lazy("SNI name"), max_length=253, required=False,
        help_text=gettext_lazy("The name sent in the TLS handshake and checked against the "
                               "certificate; blank: the address."))
    protocol = forms.ChoiceField(
        label=gettext_lazy("Protocol"), choices=MonitoredEndpoint.Protocol.choices,
        initial=MonitoredEndpoint.Protocol.TLS,
        help_text=gettext_lazy("Mail servers on ports 25, 587, 143 and 110 start in clear "
                               "and switch to TLS on STARTTLS."))


@portal_view
def endpoint_list(request):
    endpoints = (scoped(MonitoredEndpoint, request.user)
                 .filter(organization=request.organization)
                 .select_related("certificate", "managed_certificate"))
    result = request.GET.get("result", "")
    if result == MonitoredEndpoint.Result.PROBLEM:  # the dashboard's "with problems"
        endpoints = endpoints.filter(result__in=[MonitoredEndpoint.Result.PROBLEM,
                                                 MonitoredEndpoint.Result.UNREACHABLE])
    elif result in MonitoredEndpoint.Result.values:
        endpoints = endpoints.filter(result=result)
    if search := text_param(request, "q"):
        endpoints = endpoints.filter(address__icontains=search) | endpoints.filter(
            sni_name__icontains=search)
    form = EndpointForm(request.POST or None)
    if request.method == "POST":
        require(request, Role.OPERATOR)
        if form.is_valid():
            try:
                endpoint = monitoring.watch(request.organization, **form.cleaned_data)
            except ValidationError as exc:
                for field, errors in exc.message_dict.items():
                    form.add_error(field if field in form.fields else None, errors)
            else:
                AuditEvent.record(request, action=AuditEvent.Action.ENDPOINT_WATCHED,
                                  subject=str(endpoint))
                monitoring.check(endpoint.pk)
                messages.success(request, _("%(endpoint)s is monitored now.")
                                 % {"endpoint": endpoint})
                return redirect("certificates:endpoint", endpoint.pk)
    return render(request, "certificates/endpoint_list.html", {
        "page": paginate(request, endpoints.order_by("address", "port", "sni_name")),
        "query": query_without_page(request),
        "results": MonitoredEndpoint.Result,
        "filters": {"q": request.GET.get("q", ""), "result": result},
        "form": form,
        **roles(request),
    })


def _fetch(request, pk) -> MonitoredEndpoint:
    endpoint = get_scoped_or_404(
        MonitoredEndpoint.objects.select_related("organization", "certificate",
                                                 "managed_certificate"),
        request.user, pk=pk)
    enter(request, endpoint.organization)
    return endpoint


@portal_view
def endpoint_detail(request, pk):
    endpoint = _fetch(request, pk)
    return render(request, "certificates/endpoint_detail.html", {
        "endpoint": endpoint,
        "checks": endpoint.checks.all()[:HISTORY_SHOWN],
        **roles(request),
    })


@require_POST
@portal_view
def endpoint_check(request, pk):
    endpoint = _fetch(request, pk)
    require(request, Role.OPERATOR)
    monitoring.check(endpoint.pk)
    return redirect("certificates:endpoint", endpoint.pk)


@require_POST
@portal_view
def endpoint_stop(request, pk):
    endpoint = _fetch(request, pk)
    require(request, Role.OPERATOR)
    MonitoredEndpoint.objects.filter(pk=endpoint.pk).update(enabled=False)
    AuditEvent.record(request, action=AuditEvent.Action.ENDPOINT_STOPPED,
                      organization=endpoint.organization, subject=str(endpoint))
    messages.success(request, _("%(endpoint)s is no longer checked.") % {"endpoint": endpoint})
    return redirect("certificates:endpoints")
