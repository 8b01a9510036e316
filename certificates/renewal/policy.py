"""When a certificate renews: inside the CA's ACME Renewal Information window
(RFC 9773) where it offers one, else when a third of the lifetime remains (half
for lifetimes of ten days or less). And what scales with the validity left
(the leases of runs, the backoff steps) or with the lifetime (reminders,
warnings, how long a run may stay open)."""

from __future__ import annotations

import datetime
import logging

from cryptography import x509
from django.conf import settings
from django.utils import timezone

from certificates.messages import message
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
        how = message("issue.ari_window", start=window.start, end=window.end)
    else:
        renew_after, next_check = renewal_time_by_lifetime(version), None
        how = message("issue.by_lifetime")
    Certificate.objects.filter(pk=certificate.pk).update(
        renew_after=renew_after, ari_next_check_at=next_check)
    certificate.renew_after, certificate.ari_next_check_at = renew_after, next_check
    if run is not None:
        run.step(Step.SCHEDULE, StepStatus.DONE,
                 message("issue.next_renewal", when=renew_after, how=how))
    return renew_after


# -- what scales with the time a certificate has left ------------------------------
# A lease, a backoff step or a reminder fixed in minutes or days is right for a
# 90-day certificate and wrong for a 6-day one (or Pebble's 10-minute ones): each
# is bounded by a fraction of the time left, or of the lifetime.

# A lease lasts at most this fraction of the validity left, so that a run whose
# worker died is taken up again well inside the renewal margin; never shorter
# than the floors, which leave the holder time to renew it (every third).
LEASE_FRACTION = 0.1
SHORTEST_RUN_LEASE = datetime.timedelta(seconds=10)
SHORTEST_QUEUE_LEASE = datetime.timedelta(seconds=30)
# A backoff step lasts at most this fraction of the validity left.
BACKOFF_FRACTION = 0.25
# Reminders of a failing renewal: (nominal days, fraction of the lifetime), the
# smaller of the two; 14 and 3 days for a 90-day certificate, and for a 6-day one
# a day and a half and 14 hours, after the renewal time rather than with it.
REMINDERS = ((14, 0.25), (3, 0.1))
# "Expiring" alerts within EXPIRY_WARNING_DAYS or this fraction of the lifetime.
EXPIRY_WARNING_FRACTION = 0.25
# A run open longer than this fraction of the lifetime (within the bounds) is stuck.
STUCK_FRACTION = 0.05
SHORTEST_STUCK = datetime.timedelta(minutes=2)
LONGEST_STUCK = datetime.timedelta(hours=1)


def validity_left(expires_at: datetime.datetime | None,
                  now: datetime.datetime) -> datetime.timedelta | None:
    return None if expires_at is None else expires_at - now


def bounded_lease(longest: datetime.timedelta, shortest: datetime.timedelta,
                  expires_at: datetime.datetime | None,
                  now: datetime.datetime) -> datetime.timedelta:
    """``longest`` (the setting), or a tenth of the validity left if that is less,
    but never under ``shortest``."""
    left = validity_left(expires_at, now)
    if left is None:
        return longest
    return max(min(longest, left * LEASE_FRACTION), min(shortest, longest))


def run_lease(expires_at: datetime.datetime | None,
              now: datetime.datetime) -> datetime.timedelta:
    """How long a worker holds a running or deploying run at a time."""
    return bounded_lease(datetime.timedelta(seconds=settings.RENEWAL_LEASE_SECONDS),
                         SHORTEST_RUN_LEASE, expires_at, now)


def queue_lease(expires_at: datetime.datetime | None,
                now: datetime.datetime) -> datetime.timedelta:
    """How long a queued run waits for its message before it is enqueued again."""
    return bounded_lease(datetime.timedelta(seconds=settings.RENEWAL_QUEUE_SECONDS),
                         SHORTEST_QUEUE_LEASE, expires_at, now)


def capped_backoff(step: datetime.timedelta, expires_at: datetime.datetime | None,
                   now: datetime.datetime) -> datetime.timedelta:
    """A backoff step, at most a quarter of the validity left; near or past
    expiry, RENEWAL_RETRY_MIN_SECONDS (or the step, if shorter)."""
    shortest = min(step, datetime.timedelta(seconds=settings.RENEWAL_RETRY_MIN_SECONDS))
    left = validity_left(expires_at, now)
    if left is None:
        return step
    return max(min(step, left * BACKOFF_FRACTION), shortest)


def reminder_thresholds(lifetime: datetime.timedelta | None
                        ) -> list[tuple[int, datetime.timedelta]]:
    """(nominal days, time before expiry) of each reminder, nearest expiry first."""
    thresholds = []
    for days, fraction in REMINDERS:
        threshold = datetime.timedelta(days=days)
        if lifetime is not None:
            threshold = min(threshold, lifetime * fraction)
        thresholds.append((days, threshold))
    return sorted(thresholds, key=lambda pair: pair[1])


def expiry_warning(lifetime: datetime.timedelta | None) -> datetime.timedelta:
    """How close to expiry an unrenewed certificate is reported as expiring."""
    warning = datetime.timedelta(days=settings.EXPIRY_WARNING_DAYS)
    return warning if lifetime is None else min(warning, lifetime * EXPIRY_WARNING_FRACTION)


def stuck_after(lifetime: datetime.timedelta | None) -> datetime.timedelta:
    """How long a run may stay open before a person is told it is stuck."""
    if lifetime is None:
        return LONGEST_STUCK
    return min(max(lifetime * STUCK_FRACTION, SHORTEST_STUCK), LONGEST_STUCK)
