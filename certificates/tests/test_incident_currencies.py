"""An incident over CA accounts of several currencies: what it held on the
deposit is recorded by currency when it starts and shown in each currency's
own format on its page and in the API, never as one sum of yen and dollars."""

import datetime
from decimal import Decimal

import pytest
from django.urls import reverse
from django.utils import timezone

from api.tests.conftest import client_for, make_token
from certificates import tasks
from certificates.incidents import service
from certificates.incidents.selection import Filter
from certificates.models import Incident
from certificates.renewal import deposit
from certificates.tests import factories

pytestmark = pytest.mark.django_db


@pytest.fixture
def two_currencies(organization, monkeypatch):
    """Two certificates on a JPY account and one on a USD account, each paid for."""
    monkeypatch.setattr(tasks.renew, "apply_async", lambda *args, **kwargs: None)
    yen = factories.ca_account(organization, name="Yen CA", price=Decimal("1100"))
    dollars = factories.ca_account(organization, name="Dollar CA", price=Decimal("9.50"),
                                   currency="USD", low_balance_threshold=Decimal("10"))
    for account, name in [(yen, "a.example.test"), (yen, "b.example.test"),
                          (dollars, "c.example.test")]:
        cert = factories.certificate(organization, account, common_name=name, sans=[name],
                                     tags="shop")
        factories.make_current(cert, factories.new_version(cert, name))
    deposit.top_up(ca_account=yen, amount=Decimal("10000"))
    deposit.top_up(ca_account=dollars, amount=Decimal("100"))
    return yen, dollars


def test_what_an_incident_holds_is_recorded_and_shown_by_currency(
        organization, admin, client, two_currencies):
    incident = service.start(organization=organization, name="CA bug",
                             chosen=Filter(tag="shop"),
                             deadline=timezone.now() + datetime.timedelta(hours=1), by=admin)

    incident.refresh_from_db()
    assert incident.reserved_by_currency == {"JPY": "2200.00", "USD": "9.50"}
    client.force_login(admin)
    page = client.get(reverse("certificates:incident", args=[incident.pk]),
                      HTTP_ACCEPT_LANGUAGE="en").content.decode()
    shown = page.split('id="incident-reserved">', 1)[1].split("</dd>", 1)[0]
    assert "¥2,200" in shown and "$9.50" in shown and "2209" not in shown, shown
    body = client_for(make_token(admin)[1]).get(f"/api/v1/incidents/{incident.pk}/").json()
    assert body["reserved_by_currency"] == {"JPY": "2200.00", "USD": "9.50"}


def test_an_incident_from_before_shows_its_sum_in_the_currency_its_accounts_share(
        organization, admin, client, two_currencies):
    yen, _dollars = two_currencies
    incident = service.start(organization=organization, name="CA bug",
                             chosen=Filter(ca_account_id=yen.pk),
                             deadline=timezone.now() + datetime.timedelta(hours=1), by=admin)
    Incident.objects.filter(pk=incident.pk).update(reserved_by_currency={})
    client.force_login(admin)
    page = client.get(reverse("certificates:incident", args=[incident.pk]),
                      HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert 'id="incident-reserved">¥2,200</dd>' in page
