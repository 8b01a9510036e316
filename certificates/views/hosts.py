"""Target hosts: the list, the page of one, enrolment (fetch the host key, an
administrator confirms its fingerprint) and the connection test."""

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.db.models import Count, Q
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from accounts.models import Role
from accounts.signin import ensure_recent_authentication
from accounts.tenancy import get_scoped_or_404, scoped
from certificates import renewal
from certificates.hosts import enrolment
from certificates.seams import ssh
from fujissl_portal.params import text_param

from ..auditing import changed, snapshot
from ..forms import ConfirmHostKeyForm, HostForm
from ..models import AgentState, AuditEvent, TargetHost
from .common import enter, paginate, portal_view, query_without_page, require, roles


@portal_view
def host_list(request):
    hosts = scoped(TargetHost, request.user).filter(organization=request.organization)
    search = text_param(request, "q")
    if search:
        hosts = hosts.filter(Q(name__icontains=search) | Q(address__icontains=search))
    hosts = hosts.annotate(
        certificate_count=Count("deployments"),
        not_served=Count("deployments", filter=Q(deployments__served=False)),
    ).select_related("agent_state").defer("login_key", "host_key")
    return render(request, "certificates/host_list.html", {
        "page": paginate(request, hosts.order_by("name")),
        "query": query_without_page(request),
        "q": search,
        **roles(request),
    })


def _fetch(request, pk):
    host = get_scoped_or_404(TargetHost.objects.select_related("organization",
                                                               "host_key_confirmed_by"),
                             request.user, pk=pk)
    enter(request, host.organization)
    return host


DEPLOYMENTS_SHOWN = 100


def _page(request, host, **extra):
    deployments = host.deployments.select_related("certificate", "last_version")
    agent = _agent_context(host) if host.is_agent else {}
    return render(request, "certificates/host_detail.html", {
        "host": host,
        **agent,
        # Problems first; the full list is the certificate list filtered by this host.
        "deployments": deployments.order_by("served", "certificate__common_name")
        [:DEPLOYMENTS_SHOWN],
        "deployment_count": deployments.count(),
        "confirm_form": extra.pop("confirm_form", None) or ConfirmHostKeyForm(),
        **extra,
        **roles(request),
    })


def _agent_context(host):
    state = AgentState.objects.filter(host=host).first()
    reported = sorted((state.certificates if state else {}).items())
    bound = set(host.deployments.values_list("certificate__common_name", flat=True))
    return {
        "agent_state": state,
        "agent_silent_since": state.silent_since() if state else None,
        "agent_credential": host.agent_credentials.filter(revoked_at__isnull=True).first(),
        "agent_reported": [{"name": name, **values, "bound": name in bound}
                           for name, values in reported],
        # Certificates the portal sends here that the agent's configuration lacks.
        "agent_unconfigured": sorted(bound - {name for name, _values in reported})
        if state and state.last_seen else [],
        "agent_download": reverse("agent:download", args=["fujissl-agent.pyz"]),
    }


@portal_view
def host_detail(request, pk):
    return _page(request, _fetch(request, pk))


@require_POST
@portal_view
def fetch_host_key(request, pk):
    host = _fetch(request, pk)
    require(request, Role.ADMIN)
    if host.is_agent:
        messages.error(request, _("An agent host has no SSH host key to fetch."))
        return redirect("certificates:host", host.pk)
    try:
        enrolment.fetch_and_pin_host_key(host_id=host.pk, by=request.user)
    except (ssh.SSHError, ValidationError, OSError) as exc:
        messages.error(request, _("The host key could not be fetched: %(error)s")
                       % {"error": exc})
    else:
        messages.info(request, _("Compare the fingerprint below with the host's own, "
                                 "then confirm it."))
    return redirect("certificates:host", host.pk)


@require_POST
@portal_view
def confirm_host_key(request, pk):
    host = _fetch(request, pk)
    require(request, Role.ADMIN)
    form = ConfirmHostKeyForm(request.POST)
    if form.is_valid():
        try:
            fingerprint = enrolment.confirm_host_key(
                host_id=host.pk, by=request.user, fingerprint=form.cleaned_data["fingerprint"])
        except ValidationError as exc:
            form.add_error("fingerprint", exc)
        else:
            AuditEvent.record(request, action=AuditEvent.Action.HOST_KEY_CONFIRMED,
                              subject=host.name,
                              params={"fingerprint": fingerprint})
            messages.success(request, _("Host key confirmed: the host can receive "
                                        "certificates."))
            return redirect("certificates:host", host.pk)
    return _page(request, host, confirm_form=form)


@require_POST
@portal_view
def test_connection(request, pk):
    host = _fetch(request, pk)
    require(request, Role.ADMIN)  # it runs the host's reload command
    if host.is_agent:
        messages.error(request, _("An agent host is not reached over SSH: its agent checks "
                                  "in; see its last check-in below."))
        return redirect("certificates:host", host.pk)
    if not host.host_key_confirmed:
        messages.error(request, _("Confirm the host key first: the portal does not talk "
                                  "to a host whose key nobody has confirmed."))
        return redirect("certificates:host", host.pk)
    checks = enrolment.test_connection(host_id=host.pk)
    return _page(request, host, checks=checks, all_ok=all(check.ok for check in checks))


def _reauthenticate_for_commands(request, form):
    """The commands run as the host's login user on every deployment: setting
    them asks for the password again, as a key download does."""
    if {"config_test_command", "reload_command"} & set(form.changed_data):
        ensure_recent_authentication(request)


def _form_page(request, form, host=None):
    return render(request, "certificates/host_form.html",
                  {"form": form, "host": host, **roles(request)})


@portal_view
def host_create(request):
    require(request, Role.ADMIN)
    form = HostForm(request.POST or None, organization=request.organization)
    if request.method == "POST" and form.is_valid():
        _reauthenticate_for_commands(request, form)
        host = form.save()
        AuditEvent.record(request, action=AuditEvent.Action.HOST_CREATED, subject=host.name)
        messages.success(request, _("Host %(name)s added. Fetch and confirm its host key "
                                    "next.") % {"name": host.name})
        return redirect("certificates:host", host.pk)
    return _form_page(request, form)


@portal_view
def host_edit(request, pk):
    host = _fetch(request, pk)
    require(request, Role.ADMIN)
    if host.is_agent:
        from .agent_hosts import agent_host_edit  # it builds on this module's helpers

        return agent_host_edit(request, host)
    before = snapshot(host)
    form = HostForm(request.POST or None, instance=host, organization=host.organization)
    if request.method == "POST" and form.is_valid():
        _reauthenticate_for_commands(request, form)
        form.save()
        AuditEvent.record(request, action=AuditEvent.Action.HOST_CHANGED, subject=host.name,
                          params=changed(host, before))
        # Its certificates' failures this change may have fixed are retried now.
        renewal.retry_after_change(host)
        messages.success(request, _("Changes saved."))
        return redirect("certificates:host", host.pk)
    return _form_page(request, form, host)
