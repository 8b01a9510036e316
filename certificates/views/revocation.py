"""Revoking a certificate version: a confirmation page that says whether hosts
still serve it, the reason, and (for a key compromise) forcing it with the
replacement started at once. Administrators only, after re-authentication."""

from django.contrib import messages
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_http_methods

from accounts.models import Role
from accounts.signin import ensure_recent_authentication
from fujissl_portal.params import strict_int

from ..models import CertificateVersion, RevocationReason
from ..renewal import revocation
from .certificates import _fetch
from .common import portal_view, require, roles


@require_http_methods(["GET", "POST"])
@portal_view
def revoke_version(request, pk, version_pk):
    certificate = _fetch(request, pk)
    require(request, Role.ADMIN)
    version = get_object_or_404(CertificateVersion.objects.defer("private_key"),
                                certificate=certificate, pk=version_pk)
    hosts = revocation.serving_hosts(version)
    error = ""
    if request.method == "POST" and request.POST.get("confirm") == "1":
        ensure_recent_authentication(request)
        force = request.POST.get("force") == "1"
        reason = strict_int(request.POST.get("reason", "0"), minimum=0, maximum=10)
        if reason not in RevocationReason.values:
            reason = RevocationReason.UNSPECIFIED
        if force:
            reason = RevocationReason.KEY_COMPROMISE
        try:
            done = revocation.revoke_version(version_id=version.pk, reason=reason,
                                             by=request.user, force=force, request=request)
        except revocation.RevocationRefused as exc:
            error = str(exc)
        else:
            messages.success(request, _("Version %(serial)s revoked.") % {
                "serial": done.version.serial_hex})
            if done.replacement is not None:
                messages.info(request, _("Its replacement has started."))
                return redirect("certificates:run", done.replacement.pk)
            return redirect("certificates:certificate", certificate.pk)
    return render(request, "certificates/revoke_confirm.html", {
        "certificate": certificate, "version": version, "hosts": hosts,
        "reasons": RevocationReason.choices, "key_on_host": certificate.key_on_host,
        "error": error, **roles(request),
    }, status=409 if error else 200)
