"""Deleting a certificate from the browser (the API could already): a page that
says what goes with it, then, confirmed by an administrator who entered the
password again, the certificate, its versions and keys, its runs and its
bindings to hosts are deleted; the files on the hosts stay as they are. The
audit log keeps the event."""

from django.contrib import messages
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_http_methods

from accounts.models import Role
from accounts.signin import ensure_recent_authentication

from ..models import AuditEvent, RenewalRun
from .certificates import _fetch
from .common import portal_view, require, roles


@require_http_methods(["GET", "POST"])
@portal_view
def certificate_delete(request, pk):
    certificate = _fetch(request, pk)
    require(request, Role.ADMIN)
    running = certificate.runs.filter(status__in=RenewalRun.OPEN).exists()
    if request.method == "POST" and request.POST.get("confirm") == "1" and not running:
        ensure_recent_authentication(request)  # its private keys go with it
        name, organization = certificate.common_name, certificate.organization
        certificate.delete()
        AuditEvent.record(request, action=AuditEvent.Action.CERTIFICATE_DELETED,
                          organization=organization, subject=name)
        messages.success(request, _("%(name)s is deleted. Its files on the hosts are left "
                                    "as they were.") % {"name": name})
        return redirect("certificates:certificates")
    return render(request, "certificates/certificate_delete.html", {
        "certificate": certificate, "running": running,
        "versions": certificate.versions.count(),
        "hosts": list(certificate.hosts.order_by("name").values_list("name", flat=True)),
        **roles(request)})
