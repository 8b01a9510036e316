"""/metrics: Prometheus text that prometheus_client parses, behind a token or an allow-list."""

from decimal import Decimal

import pytest
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from certificates.models import Certificate, DepositEntry, RenewalRun

pytestmark = pytest.mark.django_db


def samples(text):
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def test_metrics_carry_expiry_renewal_failures_balance_and_runs(client, settings, world):
    settings.METRICS_TOKEN = "metrics-token"
    cert, ca, run = world["certificate"], world["ca_account"], world["run"]
    finished = timezone.now().replace(microsecond=0)
    RenewalRun.objects.filter(pk=run.pk).update(status="succeeded", finished_at=finished)
    RenewalRun.objects.create(certificate=cert, trigger="schedule", status="failed")
    Certificate.objects.filter(pk=cert.pk).update(failure_count=1)
    DepositEntry.objects.create(ca_account=ca, kind="charge", amount=Decimal("-1100"),
                                reference="charge-1")
    response = client.get("/metrics", HTTP_AUTHORIZATION="Bearer metrics-token")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    found = samples(response.content.decode())
    labels = (("certificate_id", str(cert.pk)), ("common_name", cert.common_name),
              ("organization", "msen"))
    assert found[("portal_certificate_expiry_timestamp_seconds", labels)] == pytest.approx(
        world["version"].not_after.timestamp())
    assert found[("portal_certificate_last_renewal_success_timestamp_seconds", labels)] == (
        pytest.approx(finished.timestamp()))
    assert found[("portal_certificate_renewal_failures", labels)] == 1
    balance = (("ca_account_id", str(ca.pk)), ("currency", "JPY"), ("name", ca.name),
               ("organization", "msen"))
    assert found[("portal_ca_account_balance", balance)] == 8900
    assert found[("portal_renewal_runs", (("outcome", "succeeded"),))] == 1
    assert found[("portal_renewal_runs", (("outcome", "failed"),))] == 1
    assert found[("portal_renewal_runs", (("outcome", "insufficient_deposit"),))] == 0


def test_metrics_refuse_a_wrong_token_and_unlisted_addresses(client, settings, world):
    settings.METRICS_TOKEN, settings.METRICS_ALLOWED_IPS = "metrics-token", []
    assert client.get("/metrics").status_code == 403
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer nope").status_code == 403


def test_metrics_are_closed_when_nothing_is_configured(client, settings, world):
    settings.METRICS_TOKEN, settings.METRICS_ALLOWED_IPS = "", []
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer ").status_code == 403


def test_metrics_are_open_to_an_allowed_network(client, settings, world):
    settings.METRICS_TOKEN, settings.METRICS_ALLOWED_IPS = "", ["10.0.0.0/8", "bad entry"]
    assert client.get("/metrics", REMOTE_ADDR="10.1.2.3").status_code == 200
    assert client.get("/metrics", REMOTE_ADDR="192.0.2.1").status_code == 403
