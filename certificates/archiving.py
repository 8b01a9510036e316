"""Archiving a certificate and restoring it, for the pages and the API alike.

An archived certificate keeps its versions, runs and audit trail, but the
scheduler no longer renews it, no alert names it, and the dashboard, the
deposit forecast and incidents leave it out (``Certificate.active()``). Each
change is one guarded UPDATE, so two people pressing at once record one event.
"""

from django.utils import timezone
from django.utils.translation import gettext as _

from .models import AuditEvent, Certificate, RenewalRun
from .renewal import deposit


class ArchiveRefused(Exception):
    """The certificate cannot change now; the message says why, in the reader's language."""


def archived_message() -> str:
    """Why a renewal or a deployment of an archived certificate is refused."""
    return _("This certificate is archived: it is neither renewed nor deployed. An "
             "administrator can restore it from its page.")


def archive(request, certificate: Certificate) -> bool:
    """Archives `certificate`; False when it was archived already. Refused while
    a run is open: it would renew or deploy a certificate nobody looks at."""
    if RenewalRun.objects.filter(certificate=certificate, status__in=RenewalRun.OPEN).exists():
        raise ArchiveRefused(_("A renewal run of this certificate is under way; archive it "
                               "once the run has ended."))
    now = timezone.now()
    if not Certificate.objects.filter(pk=certificate.pk, archived_at__isnull=True).update(
            archived_at=now):
        return False
    certificate.archived_at = now
    deposit.forget_renewals(certificate.ca_account_id)
    AuditEvent.record(request, action=AuditEvent.Action.CERTIFICATE_ARCHIVED,
                      certificate=certificate, params=_via(request))
    return True


def restore(request, certificate: Certificate) -> bool:
    """Takes `certificate` out of the archive; False when it was not archived.
    It renews again from its next renewal time, or at the next scan if that has
    passed meanwhile."""
    if not Certificate.objects.filter(pk=certificate.pk, archived_at__isnull=False).update(
            archived_at=None):
        return False
    certificate.archived_at = None
    deposit.forget_renewals(certificate.ca_account_id)
    AuditEvent.record(request, action=AuditEvent.Action.CERTIFICATE_RESTORED,
                      certificate=certificate, params=_via(request))
    return True


def _via(request) -> dict:
    # As the API's other audited changes say where they came from.
    return {"via": "api"} if request.path.startswith("/api/") else {}
