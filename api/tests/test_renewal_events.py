"""The renewal system's events become webhook deliveries of the right organisation."""

from decimal import Decimal

import pytest

from api.models import Webhook, WebhookDelivery
from certificates import renewal
from certificates.models import RenewalRun
from certificates.renewal import deposit
from certificates.renewal.issuance import IssuanceFailed
from certificates.tests.factories import ca_account, certificate

pytestmark = pytest.mark.django_db


def subscribe(organization, *events):
    return Webhook.objects.create(organization=organization, url="http://127.0.0.1:9/hook",
                                  secret="s" * 32, events=list(events))


def test_a_failed_renewal_is_delivered_to_the_organisations_webhook(
        organization, other_organization):
    subscribe(organization, "renewal.failed")
    elsewhere = subscribe(other_organization, "renewal.failed")
    cert = certificate(organization, ca_account(organization))
    run = RenewalRun.objects.create(certificate=cert, trigger=RenewalRun.Trigger.SCHEDULE,
                                    status=RenewalRun.Status.RUNNING)

    renewal.fail(run, IssuanceFailed("the CA is down", transient=True))

    delivery = WebhookDelivery.objects.get(event="renewal.failed")
    assert delivery.webhook.organization == organization
    assert delivery.payload["data"]["certificate"] == cert.pk
    assert delivery.payload["data"]["error_class"] == "transient"
    assert not WebhookDelivery.objects.filter(webhook=elsewhere).exists()


def test_a_low_deposit_is_delivered_once_a_day_like_its_mail(organization, owner):
    subscribe(organization, "deposit.low")
    ca = ca_account(organization, price=Decimal("1000"), low_balance_threshold=Decimal("5000"))
    deposit.top_up(ca_account=ca, amount=Decimal("100"))

    renewal.periodic_checks()
    renewal.periodic_checks()

    delivery = WebhookDelivery.objects.get(event="deposit.low")
    assert Decimal(delivery.payload["data"]["balance"]) == Decimal("100")
