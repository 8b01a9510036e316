"""Certificates: the list with its filters, the page of one, create and edit,
and the actions (renew now, deploy now, downloads)."""

import datetime

from django.contrib import messages
from django.db.models import Exists, F, OuterRef, Prefetch, Q
from django.http import Http404, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_http_methods, require_POST

from accounts.models import Role
from accounts.signin import ensure_recent_authentication
from accounts.tenancy import get_scoped_or_404, scoped
from certificates import archiving, renewal, states
from certificates.dns01 import acme_dns_names, publishing
from certificates.hosts.deployment import NothingToDeploy
from certificates.renewal import limits as renewal_limits
from certificates.renewal import name_warnings
from certificates.seams.errors import PortalError
from fujissl_portal.params import int_param, strict_int, text_param

from ..auditing import changed, snapshot
from ..formatting import format_amount
from ..forms import CertificateForm
from ..models import (
    AuditEvent,
    CAAccount,
    Certificate,
    Deployment,
    RenewalRun,
    RenewalStep,
    TargetHost,
)
from .common import can, enter, paginate, portal_view, query_without_page, require, roles
from .runs import collapse

SORTS = {
    # Not yet issued (no expiry) last either way: they are not about to expire.
    "expires": (F("expires_at").asc(nulls_last=True), "common_name"),
    "-expires": (F("expires_at").desc(nulls_last=True), "common_name"),
    "name": ("common_name",),
    "-name": ("-common_name",),
}
EXPIRING_CHOICES = (7, 14, 30, 60, 90)
# The list's "State" filter value for archived certificates (not a state: an
# archived certificate keeps the state it had).
ARCHIVED = "archived"
EXPIRING_MAX_DAYS = 3650
HOST_SUGGESTIONS = 100


def name_contains(text) -> Q:
    """The common name or a SAN contains `text`, whatever its case. On PostgreSQL
    both expressions have a trigram index (migration 0009)."""
    return Q(common_name__icontains=text) | Q(sans__icontains=text)


def filtered_certificates(request, now):
    """The current organisation's certificates, filtered as the query string asks."""
    params = request.GET
    certificates = states.with_state(
        scoped(Certificate, request.user).filter(organization=request.organization), now)
    if search := text_param(request, "q"):
        certificates = certificates.filter(name_contains(search))
    state = params.get("state", "")
    # Archived certificates are listed under their own filter only, as the
    # dashboard leaves them out of its counts that link here.
    if state == ARCHIVED:
        certificates = certificates.filter(archived_at__isnull=False)
    else:
        certificates = certificates.filter(Certificate.active())
    if state in states.State.values:
        certificates = certificates.filter(state=state)
    if ca_id := int_param(request, "ca"):
        certificates = certificates.filter(ca_account_id=ca_id)
    # Exists, not a join: a certificate on the host once, however many rows match.
    if host_id := int_param(request, "host"):  # one host, from the links on its page
        certificates = certificates.filter(Exists(Deployment.objects.filter(
            certificate=OuterRef("pk"), host_id=host_id)))
    if host_name := text_param(request, "hostname"):  # typed in the filters
        certificates = certificates.filter(Exists(Deployment.objects.filter(
            certificate=OuterRef("pk"), host__name__icontains=host_name)))
    if days := int_param(request, "expiring", maximum=EXPIRING_MAX_DAYS):
        certificates = certificates.filter(
            expires_at__lte=now + datetime.timedelta(days=days))
    sort = params.get("sort", "expires")
    return certificates.order_by(*SORTS.get(sort, SORTS["expires"])), sort


@portal_view
def certificate_list(request):
    now = timezone.now()
    certificates, sort = filtered_certificates(request, now)
    page = paginate(request, certificates.select_related("ca_account").annotate(
        current_revoked_at=F("current_version__revoked_at")))
    organization = request.organization
    hosts = TargetHost.objects.filter(organization=organization)
    # The host filter is typed, not chosen from a list of every host (a fleet of
    # 2,000 made the list most of the page's time and weight); small fleets get
    # their names offered as suggestions.
    host_names = list(hosts.order_by("name").values_list("name", flat=True)[
        :HOST_SUGGESTIONS + 1])
    host_id = int_param(request, "host")
    without_host = request.GET.copy()
    for key in ("host", "page"):
        without_host.pop(key, None)
    return render(request, "certificates/certificate_list.html", {
        "page": page,
        "query": query_without_page(request),
        "sort": sort,
        "states": states.State,
        "ca_accounts": CAAccount.objects.filter(organization=organization).only("pk", "name"),
        "host_names": host_names if len(host_names) <= HOST_SUGGESTIONS else [],
        "host": host_id and hosts.filter(pk=host_id).only("pk", "name").first(),
        "without_host": without_host.urlencode(),
        "expiring_choices": EXPIRING_CHOICES,
        "filters": {key: request.GET.get(key, "") for key in
                    ("q", "state", "ca", "host", "hostname", "expiring")},
        "now": now,
        **roles(request),
    })


def _fetch(request, pk):
    """One certificate of the asker's organisations (404 otherwise), with its state."""
    certificate = get_scoped_or_404(
        states.with_state(Certificate.objects.select_related(
            "ca_account", "organization", "current_version", "moved_from_ca_account",
            "fallback_ca_account")),
        request.user, pk=pk)
    enter(request, certificate.organization)
    return certificate


@portal_view
def certificate_detail(request, pk):
    certificate = _fetch(request, pk)
    now = timezone.now()
    version = certificate.current_version
    validity = None
    if version is not None:
        lifetime = (version.not_after - version.not_before).total_seconds() or 1
        elapsed = (now - version.not_before).total_seconds()
        validity = {
            "percent": max(0, min(100, round(100 * elapsed / lifetime))),
            "days_left": (version.not_after - now).days,
            "total_days": round(lifetime / 86400),
        }
    runs = certificate.runs.select_related("requested_by", "version").prefetch_related(
        Prefetch("steps", queryset=RenewalStep.objects.select_related("host")))[:10]
    for run in runs:
        run.shown_steps = collapse(run.steps.all())
    return render(request, "certificates/certificate_detail.html", {
        "certificate": certificate,
        "state": states.State(certificate.state),
        "version": version,
        "validity": validity,
        "versions": certificate.versions.defer("private_key", "chain_pem")[:20],
        "deployments": certificate.deployments.select_related("host", "last_version")
        .order_by("host__name"),
        "runs": runs,
        "open_run": next((run for run in runs if run.is_open), None),
        "can_download_key": roles(request)["can_admin"],
        "dns_chains": _dns_chains(certificate) if request.GET.get("chains") else None,
        "has_acme_dns": certificate.dns_credentials.filter(kind="acme-dns").exists(),
        **roles(request),
    })


@require_POST
@portal_view
def acme_dns_register(request, pk):
    """Registers each name of the certificate with its acme-dns credential (once)
    and says the CNAME each needs."""
    certificate = _fetch(request, pk)
    require(request, Role.OPERATOR)
    try:
        made = acme_dns_names.delegations(certificate)
    except PortalError as exc:
        messages.error(request, str(exc))
    else:
        for delegation in made:
            messages.info(request, _("Create the CNAME %(record)s → %(target)s")
                          % {"record": delegation.record, "target": delegation.target})
        if not made:
            messages.error(request, _("Choose an acme-dns credential for the certificate "
                                      "first."))
    return redirect("certificates:certificate", certificate.pk)


def _dns_chains(certificate):
    """Each name with where its TXT record goes (its CNAME chain and the credential
    that writes at its end), or why it cannot go anywhere; looked up on request."""
    rows = []
    credentials = list(certificate.dns_credentials.all())
    for name in certificate.names():
        try:
            rows.append((name, publishing.place(certificate, name, credentials).describe(), ""))
        except PortalError as exc:
            rows.append((name, "", str(exc)))
    return rows


def _form_page(request, form, certificate=None, warnings=()):
    return render(request, "certificates/certificate_form.html", {
        "form": form, "certificate": certificate, "warnings": warnings, **roles(request)})


def _unconfirmed_warnings(request, form):
    """What DNS shows wrong with the names (name_warnings), unless the person
    confirmed past it; looked up only when the names or the CA changed."""
    if request.POST.get("acknowledge_warnings") == "1":
        return []
    if form.instance.pk and not set(form.changed_data) & set(name_warnings.CHECKED_FIELDS):
        return []
    return name_warnings.warnings_for(form.instance)


@portal_view
def certificate_create(request):
    require(request, Role.OPERATOR)
    form = CertificateForm(request.POST or None, organization=request.organization)
    if request.method == "POST" and form.is_valid():
        if warnings := _unconfirmed_warnings(request, form):
            return _form_page(request, form, warnings=warnings)
        certificate = form.save()
        AuditEvent.record(request, action=AuditEvent.Action.CERTIFICATE_CREATED,
                          certificate=certificate)
        messages.success(request, _("Certificate %(name)s added.") % {
            "name": certificate.common_name})
        return redirect("certificates:certificate", certificate.pk)
    return _form_page(request, form)


@portal_view
def certificate_edit(request, pk):
    certificate = _fetch(request, pk)
    require(request, Role.OPERATOR)
    certificate = get_object_or_404(Certificate, pk=certificate.pk)  # without the annotation
    before = snapshot(certificate)
    form = CertificateForm(request.POST or None, instance=certificate,
                           organization=certificate.organization)
    if request.method == "POST" and form.is_valid():
        if warnings := _unconfirmed_warnings(request, form):
            return _form_page(request, form, certificate, warnings)
        form.save()
        AuditEvent.record(request, action=AuditEvent.Action.CERTIFICATE_CHANGED,
                          certificate=certificate, params=changed(certificate, before))
        # A failure this change may have fixed is retried now, not after its backoff.
        renewal.retry_after_change(certificate)
        messages.success(request, _("Changes saved."))
        return redirect("certificates:certificate", certificate.pk)
    return _form_page(request, form, certificate)


@require_http_methods(["GET", "POST"])
@portal_view
def renew(request, pk):
    """Renew now. A renewal places an order and charges the deposit, so the button
    leads to a page that says so with the price, the deposit left after it and,
    for a certificate still good, how long it has left; only its confirmation
    (a POST with confirm=1) starts the run. Outside the renewal window it would
    issue and charge again for nothing: only an administrator may confirm."""
    certificate = _fetch(request, pk)
    require(request, Role.OPERATOR)
    if certificate.is_archived:
        messages.error(request, archiving.archived_message())
        return redirect("certificates:certificate", certificate.pk)
    now = timezone.now()
    open_run = certificate.runs.filter(status__in=RenewalRun.OPEN).first()
    # With a run under way the renewal is that run: nothing is ordered again.
    due = open_run is not None or certificate.in_renewal_window(now)
    admin = can(request, Role.ADMIN)
    if request.method != "POST" or request.POST.get("confirm") != "1" or not (due or admin):
        return _renew_confirmation(request, certificate, open_run, now=now, due=due,
                                   admin=admin)
    try:
        run = renewal.renew_now(certificate_id=certificate.pk, by=request.user,
                                force=not due)
    except renewal_limits.PaidIssuanceLimit as exc:
        messages.error(request, paid_limit_message(exc))
        return redirect("certificates:certificate", certificate.pk)
    except renewal_limits.NotDue:
        # The run under way ended between the two looks: ask again, with its window.
        return redirect("certificates:renew", certificate.pk)
    if run is None:
        messages.error(request, _("The renewal could not be started."))
        return redirect("certificates:certificate", certificate.pk)
    if run.forced:
        renewal_limits.record_forced(request, certificate=certificate, run=run)
    return redirect("certificates:run", run.pk)


def _renew_confirmation(request, certificate, open_run, *, now, due, admin):
    """What renewing now would do, in words; refused (403) to an operator outside
    the renewal window, who cannot confirm it."""
    account = certificate.ca_account
    version = certificate.current_version
    valid = version is not None and version.not_after > now
    after = account.available() - account.price
    return render(request, "certificates/renew_confirm.html", {
        "certificate": certificate, "version": version, "open_run": open_run,
        "due": due, "valid": valid,
        "days_left": (version.not_after - now).days if valid else None,
        "price": format_amount(account.price, account.currency),
        "after": format_amount(after, account.currency), "short": after < 0,
        **roles(request),
    }, status=200 if due or admin else 403)


def paid_limit_message(exc) -> str:
    return _("This organisation has started %(limit)d paid renewals in the last 24 hours, "
             "its daily limit; this one was not started. Automatic renewals go on; try "
             "again later, or ask whoever runs the portal to raise PAID_ISSUANCES_PER_DAY."
             ) % {"limit": exc.limit}


@require_POST
@portal_view
def deploy(request, pk):
    """A deploy-only run, through the same service as the API and manage.py."""
    certificate = _fetch(request, pk)
    require(request, Role.OPERATOR)
    host_ids = [strict_int(value) for value in request.POST.getlist("host")] or None
    try:
        run = renewal.deploy_now(certificate_id=certificate.pk, by=request.user,
                                 host_ids=host_ids)
    except renewal_limits.Archived:
        messages.error(request, archiving.archived_message())
        return redirect("certificates:certificate", certificate.pk)
    except NothingToDeploy:
        messages.error(request, _("There is nothing to deploy yet: the certificate has not "
                                  "been issued. Renew it first."))
        return redirect("certificates:certificate", certificate.pk)
    except (renewal.NoHosts, renewal.NotAHostOfTheCertificate) as exc:
        messages.error(request, _("Hosts: %(error)s") % {"error": exc})
        return redirect("certificates:certificate", certificate.pk)
    if run.already_open:
        messages.info(request, _("A run of this certificate is already under way; it "
                                 "deploys when it is done."))
    return redirect("certificates:run", run.pk)


DOWNLOADS = {
    "cert": ("leaf_pem", "{name}.crt"),
    "chain": ("intermediates_pem", "{name}.ca-bundle.crt"),
    "fullchain": ("fullchain_pem", "{name}.fullchain.crt"),
}


def _filename(certificate, pattern):
    return pattern.format(name=certificate.common_name.replace("*", "_wildcard"))


def _attachment(content, filename, content_type="application/x-pem-file"):
    response = HttpResponse(content, content_type=content_type)
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    response["Cache-Control"] = "no-store"
    return response


@portal_view
def download(request, pk, what):
    certificate = _fetch(request, pk)
    version = certificate.current_version
    if version is None or what not in DOWNLOADS:
        raise Http404
    method, pattern = DOWNLOADS[what]
    return _attachment(getattr(version, method)(), _filename(certificate, pattern))


@require_POST
@portal_view
def download_key(request, pk):
    """The private key, for administrators only, and every download is audited."""
    certificate = _fetch(request, pk)
    require(request, Role.ADMIN)
    version = certificate.current_version
    if version is None:
        raise Http404
    ensure_recent_authentication(request)
    AuditEvent.record(request, action=AuditEvent.Action.KEY_DOWNLOAD, certificate=certificate,
                      detail=version.fingerprint_sha256)
    return _attachment(version.private_key, _filename(certificate, "{name}.key"))
