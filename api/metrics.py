"""/metrics in Prometheus text format, read from the database at each scrape.

Open to `Authorization: Bearer <METRICS_TOKEN>` or to an address in
METRICS_ALLOWED_IPS (addresses or networks); closed when neither is set.
"""

import hmac
import ipaddress

from django.conf import settings
from django.db.models import Count, DecimalField, Max, Q, Sum, Value
from django.db.models.functions import Coalesce
from django.http import HttpResponse
from django.views.decorators.http import require_GET
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily

from certificates.models import CAAccount, Certificate, RenewalRun

CERT_LABELS = ["certificate_id", "common_name", "organization"]


class PortalCollector:
    def collect(self):
        expiry = GaugeMetricFamily(
            "portal_certificate_expiry_timestamp_seconds",
            "When the certificate's current version expires (Unix time).", labels=CERT_LABELS)
        renewed = GaugeMetricFamily(
            "portal_certificate_last_renewal_success_timestamp_seconds",
            "When the certificate's last successful renewal run finished (Unix time).",
            labels=CERT_LABELS)
        failures = GaugeMetricFamily(
            "portal_certificate_renewal_failures",
            "Renewal failures in a row since the last success.", labels=CERT_LABELS)
        # Archived certificates are out of service: no expiry to alert on.
        certificates = Certificate.objects.filter(Certificate.active()).select_related(
            "organization").annotate(
            last_success=Max("runs__finished_at",
                             filter=Q(runs__status=RenewalRun.Status.SUCCEEDED)),
        ).order_by("pk")
        for c in certificates.iterator(chunk_size=2000):
            labels = [str(c.pk), c.common_name, c.organization.slug]
            if c.expires_at:
                expiry.add_metric(labels, c.expires_at.timestamp())
            if c.last_success:
                renewed.add_metric(labels, c.last_success.timestamp())
            failures.add_metric(labels, c.failure_count)
        yield from (expiry, renewed, failures)

        balance = GaugeMetricFamily(
            "portal_ca_account_balance", "Deposit balance of the CA account, in its currency.",
            labels=["ca_account_id", "name", "organization", "currency"])
        accounts = CAAccount.objects.select_related("organization").annotate(total=Coalesce(
            Sum("ledger__amount"), Value(0),
            output_field=DecimalField(max_digits=14, decimal_places=2))).order_by("pk")
        for a in accounts:
            balance.add_metric([str(a.pk), a.name, a.organization.slug, a.currency],
                               float(a.total))
        yield balance

        runs = GaugeMetricFamily("portal_renewal_runs", "Renewal runs recorded, by outcome.",
                                 labels=["outcome"])
        counts = dict(RenewalRun.objects.order_by().values_list("status")
                      .annotate(n=Count("pk")).values_list("status", "n"))
        for outcome in RenewalRun.Status.values:
            runs.add_metric([outcome], counts.get(outcome, 0))
        yield runs


def _allowed(request) -> bool:
    token = settings.METRICS_TOKEN
    header = request.headers.get("Authorization", "")
    if token and hmac.compare_digest(header.encode(), f"Bearer {token}".encode()):
        return True
    try:
        address = ipaddress.ip_address(request.META.get("REMOTE_ADDR", ""))
    except ValueError:
        return False
    for allowed in settings.METRICS_ALLOWED_IPS:
        try:
            if address in ipaddress.ip_network(allowed.strip(), strict=False):
                return True
        except ValueError:
            continue
    return False


@require_GET
def metrics_view(request):
    if not _allowed(request):
        response = HttpResponse("Forbidden: send the metrics token or scrape from an allowed "
                                "address.\n", status=403, content_type="text/plain")
        return response
    registry = CollectorRegistry(auto_describe=False)
    registry.register(PortalCollector())
    return HttpResponse(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)
