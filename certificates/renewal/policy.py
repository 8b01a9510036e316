"""When a certificate renews: inside the CA's ACME Renewal Information window
(RFC 9773) where it offers one, else when a third of the lifetime remains (half
for lifetimes of ten days or less)."""

from __future__ import annotations

import datetime
import logging

from cryptography import x509
from django.utils import timezone
from django.utils.translation import gettext as _

from certificates.models import Certificate, CertificateVersion, RenewalRun
from certificates.seams import acme
from certificates.steps import Step, StepStatus

logger = logging.getLogger(__name__)

SHORT_LIFETIME = datetime.timedelta(days=10)


def ari_id(version: CertificateVersion) -> str | None:
    """The version's ACME Renewal Information id, or None when it has none: the
    id is made of the authority key identifier, which a certificate imported
    from elsewhere may lack; such a renewal names no certificate it replaces."""
    leaf = x509.load_pem_x509_certificate(version.leaf_pem().encode())
    try:
        aki = leaf.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    except x509.ExtensionNotFound:
        return None
    return acme.ari_certificate_id(leaf) if aki.key_identifier else None


def remaining_at_renewal(lifetime: datetime.timedelta) -> datetime.timedelta:
    """A third of the lifetime (half, for lifetimes of ten days or less)."""
    return lifetime / 2 if lifetime <= SHORT_LIFETIME else lifetime / 3


def renewal_time_by_lifetime(version: CertificateVersion) -> datetime.datetime:
    """When a third of the lifetime remains (half, for lifetimes of ten days or less)."""
    return version.not_after - remaining_at_renewal(version.lifetime())


def schedule_renewal(certificate: Certificate, version: CertificateVersion, *,
                     ca: acme.CA | None = None, run: RenewalRun | None = None,
                     now: datetime.datetime | None = None) -> datetime.datetime:
    """Sets renew_after from the CA's ARI window where it offers one, else by
    lifetime; and when to ask the CA for its window again."""
    now = now or timezone.now()
    window = None
    if ca is not None:
        try:
            window = ca.renewal_window(version.leaf_pem())
        except acme.AcmeError as exc:
            logger.warning("ARI lookup for %s failed: %s", certificate, exc)
    if window is not None:
        renew_after = max(window.random_time(), now)
        next_check = now + datetime.timedelta(seconds=window.retry_after_seconds)
        how = _("inside the CA's renewal window %(start)s – %(end)s") % {
            "start": window.start.isoformat(), "end": window.end.isoformat()}
    else:
        renew_after, next_check = renewal_time_by_lifetime(version), None
        how = _("when a third of the lifetime remains (half for ten days or less)")
    Certificate.objects.filter(pk=certificate.pk).update(
        renew_after=renew_after, ari_next_check_at=next_check)
    certificate.renew_after, certificate.ari_next_check_at = renew_after, next_check
    if run is not None:
        run.step(Step.SCHEDULE, StepStatus.DONE, _("next renewal %(when)s, %(how)s")
                 % {"when": renew_after.isoformat(), "how": how})
    return renew_after
