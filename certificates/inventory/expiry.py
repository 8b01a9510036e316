"""Certificates managed elsewhere that near expiry without being served at a
monitored endpoint (an imported certificate, a file found on a host): told
once per certificate by the periodic checks. One served at a monitored
endpoint is told by its check instead (monitoring.py), so nobody hears twice."""

import datetime

from django.conf import settings
from django.db.models import Exists, OuterRef

from certificates import alerts
from certificates.models import InventoryCertificate, MonitoredEndpoint, Notification
from certificates.signals import announce


def expiring_unmanaged(*, now: datetime.datetime) -> int:
    """Mails and webhooks for unmanaged certificates expiring within
    EXPIRY_WARNING_DAYS; how many were told."""
    watched = MonitoredEndpoint.objects.filter(certificate=OuterRef("pk"), enabled=True)
    rows = (InventoryCertificate.objects.filter(InventoryCertificate.unadopted())
            .filter(expires_at__gt=now,
                    expires_at__lte=now + datetime.timedelta(days=settings.EXPIRY_WARNING_DAYS))
            .exclude(Exists(watched)).select_related("organization")
            .defer("private_key", "chain_pem"))
    told = 0
    for row in rows.iterator(chunk_size=500):
        days = (row.expires_at - now).days
        sent = alerts.notify(Notification.Kind.UNMANAGED_EXPIRING, inventory=row, once=True,
                             event=f"expiring:{row.fingerprint_sha256}",
                             extra={"name": str(row), "days": days, "where": row.where()})
        if sent:  # once, like the mail
            told += 1
            announce("inventory.expiring", organization=row.organization, payload={
                "certificate": row.pk, "name": str(row), "days": days,
                "expires_at": row.expires_at.isoformat(),
                "fingerprint": row.fingerprint_sha256})
    return told
