"""Agent hosts in the browser: adding one, its enrolment code, revoking its
credential. The host's page itself is hosts.host_detail, which shows the
agent's state for an agent host."""

from django.contrib import messages
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from accounts.models import Role
from accounts.signin import ensure_recent_authentication
from certificates import renewal
from certificates.hosts import agents

from ..auditing import changed, snapshot
from ..forms import AgentHostForm
from ..models import AuditEvent
from .common import portal_view, require, roles
from .hosts import _fetch, _page


def _form_page(request, form, host=None):
    return render(request, "certificates/agent_host_form.html",
                  {"form": form, "host": host, **roles(request)})


@portal_view
def agent_host_create(request):
    require(request, Role.ADMIN)
    form = AgentHostForm(request.POST or None, organization=request.organization)
    if request.method == "POST" and form.is_valid():
        host = form.save()
        AuditEvent.record(request, action=AuditEvent.Action.HOST_CREATED, subject=host.name,
                          params={"transport": host.transport})
        messages.success(request, _("Agent host %(name)s added. Make an enrolment code next "
                                    "and run the agent on the server.") % {"name": host.name})
        return redirect("certificates:host", host.pk)
    return _form_page(request, form)


def agent_host_edit(request, host):
    before = snapshot(host)
    form = AgentHostForm(request.POST or None, instance=host, organization=host.organization)
    if request.method == "POST" and form.is_valid():
        form.save()
        AuditEvent.record(request, action=AuditEvent.Action.HOST_CHANGED, subject=host.name,
                          params=changed(host, before))
        renewal.retry_after_change(host)
        messages.success(request, _("Changes saved."))
        return redirect("certificates:host", host.pk)
    return _form_page(request, form, host)


@require_POST
@portal_view
def make_enrolment_code(request, pk):
    """A one-time code, shown once on the host's page with the command to run."""
    host = _fetch(request, pk)
    require(request, Role.ADMIN)
    if not host.is_agent:
        messages.error(request, _("%(name)s is reached over SSH; it has no agent.")
                       % {"name": host.name})
        return redirect("certificates:host", host.pk)
    ensure_recent_authentication(request)  # the code lets a server act as this host
    enrolment, code = agents.make_enrolment_code(host, by=request.user)
    AuditEvent.record(request, action=AuditEvent.Action.AGENT_CODE_MADE, subject=host.name,
                      params={"expires_at": enrolment.expires_at.isoformat()})
    portal_url = request.build_absolute_uri("/").rstrip("/")
    return _page(request, host, enrolment_code=code, enrolment=enrolment,
                 enrol_command=f"fujissl-agent enrol --url {portal_url} --code {code}")


@require_POST
@portal_view
def revoke_agent(request, pk):
    host = _fetch(request, pk)
    require(request, Role.ADMIN)
    ensure_recent_authentication(request)
    count = agents.revoke(host, by=request.user)
    if count:
        AuditEvent.record(request, action=AuditEvent.Action.AGENT_REVOKED, subject=host.name)
        messages.success(request, _("The agent's credential is revoked: its next check-in is "
                                    "refused. Make a new enrolment code to enrol it again."))
    else:
        messages.info(request, _("This host has no live agent credential."))
    return redirect(reverse("certificates:host", args=[host.pk]))
