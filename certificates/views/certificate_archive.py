"""Archiving a certificate from its page, and restoring it: administrators only,
audited (certificates/archiving.py). Reversible, so one press does it; the
page says what archiving means next to the button."""

from django.contrib import messages
from django.shortcuts import redirect
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from accounts.models import Role

from .. import archiving
from .certificates import _fetch
from .common import portal_view, require


@require_POST
@portal_view
def certificate_archive(request, pk):
    certificate = _fetch(request, pk)
    require(request, Role.ADMIN)
    try:
        archiving.archive(request, certificate)
    except archiving.ArchiveRefused as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, _("%(name)s is archived: it is no longer renewed, alerted on "
                                    "or counted. Its history is kept.")
                         % {"name": certificate.common_name})
    return redirect("certificates:certificate", certificate.pk)


@require_POST
@portal_view
def certificate_restore(request, pk):
    certificate = _fetch(request, pk)
    require(request, Role.ADMIN)
    archiving.restore(request, certificate)
    messages.success(request, _("%(name)s is restored: it renews again on its schedule.")
                     % {"name": certificate.common_name})
    return redirect("certificates:certificate", certificate.pk)
