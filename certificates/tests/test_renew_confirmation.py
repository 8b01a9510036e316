"""'Renew now' places an order and charges the deposit, so the button leads to a
page that says what will happen (the CA account, the price, the deposit left
after it and, for a certificate still valid, how long it has left) and nothing
is ordered until it is confirmed."""

import datetime
from decimal import Decimal

import pytest
from django.urls import reverse
from django.utils import timezone

from certificates.models import (
    AuditEvent,
    CAAccount,
    CertificateVersion,
    RenewalRun,
)
from certificates.tests.factories import issued

pytestmark = pytest.mark.django_db


@pytest.fixture
def due(organization, tmp_path):
    return issued(organization, tmp_path, renew_in_days=-1)


@pytest.fixture
def not_due(organization, tmp_path):
    return issued(organization, tmp_path, renew_in_days=30)


def days_left(cert):
    return (cert.expires_at - timezone.now()).days


def test_the_button_leads_to_the_confirmation_not_to_an_order(client, due, operator):
    client.force_login(operator)
    html = client.get(reverse("certificates:certificate", args=[due.pk]),
                      HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert f'id="renew-now" href="{reverse("certificates:renew", args=[due.pk])}"' in html


def test_the_confirmation_states_the_price_the_deposit_after_and_the_days_left(
        client, due, operator):
    client.force_login(operator)
    response = client.get(reverse("certificates:renew", args=[due.pk]),
                          HTTP_ACCEPT_LANGUAGE="en")
    html = response.content.decode()
    assert response.status_code == 200
    assert f"({days_left(due)} days left)" in html
    assert "still valid, and charges for it again" in html
    assert "with the CA account FujiSSL: ¥1,100 is reserved" in html
    assert "The deposit has ¥8,900 available after it." in html
    assert 'name="confirm" value="1"' in html and 'id="renew-confirm-button"' in html
    assert not RenewalRun.objects.exists()


def test_the_confirmation_in_japanese(client, due, operator):
    client.force_login(operator)
    html = client.get(reverse("certificates:renew", args=[due.pk]),
                      HTTP_ACCEPT_LANGUAGE="ja").content.decode()
    assert f"(残り {days_left(due)} 日)" in html
    assert "デポジットから 1,100円 が確保され" in html
    assert "更新後のデポジットの利用可能額は 8,900円 です。" in html
    assert "再び課金されます" in html
    assert not RenewalRun.objects.exists()


def test_a_post_without_the_confirmation_orders_nothing(client, due, operator):
    client.force_login(operator)
    response = client.post(reverse("certificates:renew", args=[due.pk]),
                           HTTP_ACCEPT_LANGUAGE="en")
    assert response.status_code == 200 and 'id="renew-price"' in response.content.decode()
    assert not RenewalRun.objects.exists()


def test_the_confirmation_starts_the_run(client, due, operator):
    client.force_login(operator)
    response = client.post(reverse("certificates:renew", args=[due.pk]), {"confirm": "1"})
    run = RenewalRun.objects.get(certificate=due)
    assert response["Location"] == reverse("certificates:run", args=[run.pk])
    assert run.requested_by == operator and not run.forced
    assert not AuditEvent.objects.filter(action=AuditEvent.Action.RENEWAL_FORCED).exists()


def test_a_renewal_under_way_is_shown_not_ordered_again(client, due, operator):
    client.force_login(operator)
    url = reverse("certificates:renew", args=[due.pk])
    first = client.post(url, {"confirm": "1"})
    run = RenewalRun.objects.get()

    html = client.get(url, HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert 'id="renew-open"' in html and reverse("certificates:run", args=[run.pk]) in html
    assert 'id="renew-confirm-button"' not in html
    second = client.post(url, {"confirm": "1"})
    assert first["Location"] == second["Location"]
    assert RenewalRun.objects.count() == 1


def test_a_free_ca_account_charges_nothing(client, due, operator):
    CAAccount.objects.filter(pk=due.ca_account_id).update(price=Decimal("0"))
    client.force_login(operator)
    html = client.get(reverse("certificates:renew", args=[due.pk]),
                      HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert "The CA account FujiSSL is free: nothing is charged." in html
    assert 'id="renew-price"' not in html and "charges for it again" not in html


def test_a_deposit_that_cannot_pay_says_so(client, due, operator):
    CAAccount.objects.filter(pk=due.ca_account_id).update(price=Decimal("12000"))
    client.force_login(operator)
    html = client.get(reverse("certificates:renew", args=[due.pk]),
                      HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert 'id="renew-short"' in html and "(-¥2,000 after it)" in html


def test_an_operator_cannot_force_outside_the_window(client, not_due, operator):
    client.force_login(operator)
    url = reverse("certificates:renew", args=[not_due.pk])
    response = client.get(url, HTTP_ACCEPT_LANGUAGE="en")
    html = response.content.decode()
    assert response.status_code == 403
    assert 'id="renew-refused"' in html and f"({days_left(not_due)} days left)" in html
    assert 'id="renew-confirm-button"' not in html
    assert client.post(url, {"confirm": "1"}).status_code == 403
    assert not RenewalRun.objects.exists()


def test_one_day_left_is_said_in_the_singular(client, due, operator):
    # A version with a day and a bit left (a short-lived certificate, say).
    CertificateVersion.objects.filter(pk=due.current_version_id).update(
        not_after=timezone.now() + datetime.timedelta(days=1, hours=2))
    client.force_login(operator)

    html = client.get(reverse("certificates:renew", args=[due.pk]),
                      HTTP_ACCEPT_LANGUAGE="en").content.decode()

    assert "(1 day left)" in html and "(1 days left)" not in html
