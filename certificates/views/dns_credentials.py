"""DNS credentials: listed to every member (operators choose them for
certificates); added, changed and tested by administrators."""

from django.contrib import messages
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from accounts.models import Role
from accounts.tenancy import get_scoped_or_404, scoped
from certificates.dns01 import checking
from certificates.renewal import scheduling

from ..auditing import changed, snapshot
from ..dns_forms import DNSCredentialForm, kinds_help
from ..models import AuditEvent, DNSCredential
from .common import enter, portal_view, require, roles


@portal_view
def dns_credential_list(request):
    credentials = (scoped(DNSCredential, request.user)
                   .filter(organization=request.organization)
                   .prefetch_related("certificates"))
    return render(request, "certificates/dns_credential_list.html",
                  {"credentials": credentials, **roles(request)})


def _fetch(request, pk):
    credential = get_scoped_or_404(DNSCredential.objects.select_related("organization"),
                                   request.user, pk=pk)
    enter(request, credential.organization)
    return credential


def _form_page(request, form, credential=None):
    return render(request, "certificates/dns_credential_form.html", {
        "form": form, "credential": credential, "kinds_help": kinds_help(), **roles(request)})


def _submitted(request, form):
    # "Show the provider's fields" posts the form only to draw them.
    return request.method == "POST" and "show_provider" not in request.POST and form.is_valid()


@portal_view
def dns_credential_create(request):
    require(request, Role.ADMIN)
    form = DNSCredentialForm(request.POST or None, organization=request.organization)
    if _submitted(request, form):
        credential = form.save()
        AuditEvent.record(request, action=AuditEvent.Action.DNS_CREDENTIAL_CREATED,
                          subject=credential.name)
        messages.success(request, _("DNS credential %(name)s added: test it now.")
                         % {"name": credential.name})
        return redirect("certificates:dns_credentials")
    return _form_page(request, form)


@portal_view
def dns_credential_edit(request, pk):
    credential = _fetch(request, pk)
    require(request, Role.ADMIN)
    before = snapshot(credential)
    form = DNSCredentialForm(request.POST or None, instance=credential,
                             organization=credential.organization)
    if _submitted(request, form):
        form.save()
        AuditEvent.record(request, action=AuditEvent.Action.DNS_CREDENTIAL_CHANGED,
                          subject=credential.name, params=changed(credential, before))
        # The failures this credential caused may be fixed: retried now, not in a day.
        scheduling.retry_after_change(credential)
        messages.success(request, _("Changes saved."))
        return redirect("certificates:dns_credentials")
    return _form_page(request, form, credential)


@require_POST
@portal_view
def dns_credential_test(request, pk):
    """Writes a TXT record, waits until every authoritative server serves it,
    deletes it; each step said."""
    credential = _fetch(request, pk)
    require(request, Role.ADMIN)
    outcomes = checking.test(credential)
    for outcome in outcomes:
        (messages.success if outcome.ok else messages.error)(
            request, f"{credential.name}: {outcome.detail}")
    return redirect("certificates:dns_credentials")
