"""Renewing a certificate before its renewal window issues and charges again for
one that is still good: it needs an administrator and a confirmation that shows
the price (UI), force=true (API) or --force (manage.py renew), and each one is in
the audit log. Past the organisation's daily number of paid renewals, a person's
renewal is refused with a clear message; automatic ones go on."""

import datetime
import io
import zoneinfo
from decimal import Decimal

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse
from django.utils import timezone

from api.tests.conftest import client_for, make_token
from certificates import renewal
from certificates.models import AuditEvent, Certificate, RenewalRun
from certificates.renewal import deposit, issuance
from certificates.tests.factories import ca_account, certificate, one_of_everything
from certificates.tests.pki import CraftedCA, leaf_for

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def english(client):
    client.defaults["HTTP_ACCEPT_LANGUAGE"] = "en"


@pytest.fixture
def not_due(organization, tmp_path):
    """An issued certificate (price 1,100 JPY) whose renewal time is a month away."""
    made = one_of_everything(organization, tmp_path)
    cert, version = made["certificate"], made["version"]
    RenewalRun.objects.all().delete()
    Certificate.objects.filter(pk=cert.pk).update(
        current_version=version, expires_at=version.not_after,
        renew_after=timezone.now() + datetime.timedelta(days=30))
    cert.refresh_from_db()
    return cert


def forced_events():
    return AuditEvent.objects.filter(action=AuditEvent.Action.RENEWAL_FORCED)


# -- the UI ------------------------------------------------------------------------


def test_an_operator_cannot_renew_a_certificate_before_its_window(client, not_due, operator):
    client.force_login(operator)
    url = reverse("certificates:renew", args=[not_due.pk])

    for data in ({}, {"confirm": "1"}):
        response = client.post(url, data)
        assert response.status_code == 403
        html = response.content.decode()
        assert 'id="renew-refused"' in html and "Only an administrator" in html
        assert 'id="renew-confirm-button"' not in html
    assert not RenewalRun.objects.exists()
    assert not forced_events().exists()


def test_an_administrator_sees_the_price_and_must_confirm_a_renewal_before_its_window(
    client, not_due, admin
):
    client.force_login(admin)
    url = reverse("certificates:renew", args=[not_due.pk])

    response = client.post(url)
    html = response.content.decode()
    assert response.status_code == 200
    assert 'id="renew-price"' in html and "¥1,100" in html
    assert f"({(not_due.expires_at - timezone.now()).days} days left)" in html
    assert 'name="confirm" value="1"' in html
    assert not RenewalRun.objects.exists()

    response = client.post(url, {"confirm": "1"})
    run = RenewalRun.objects.get(certificate=not_due)
    assert response["Location"] == reverse("certificates:run", args=[run.pk])
    event = forced_events().get()
    assert event.user == admin and event.certificate == not_due
    assert event.params["price"] == "1100.00" and event.params["currency"] == "JPY"
    assert event.params["run"] == run.pk


def test_an_operator_renews_a_due_certificate_without_forcing(client, not_due, operator):
    Certificate.objects.filter(pk=not_due.pk).update(renew_after=timezone.now())
    client.force_login(operator)
    response = client.post(reverse("certificates:renew", args=[not_due.pk]), {"confirm": "1"})
    run = RenewalRun.objects.get(certificate=not_due)
    assert response["Location"] == reverse("certificates:run", args=[run.pk])
    assert not forced_events().exists()


# -- the API -----------------------------------------------------------------------


def renew_by_api(user, cert, **body):
    client = client_for(make_token(user)[1])
    return client.post(f"/api/v1/certificates/{cert.pk}/renew/", body, format="json")


def test_the_api_refuses_a_renewal_before_its_window_without_force(not_due, admin):
    response = renew_by_api(admin, not_due)
    assert response.status_code == 400
    error = response.json()["errors"][0]
    assert error["field"] == "force" and error["code"] == "not_due"
    assert "1100" in error["message"]
    assert not RenewalRun.objects.exists()


def test_the_api_lets_only_an_administrator_force_a_renewal(not_due, operator, admin):
    response = renew_by_api(operator, not_due, force=True)
    assert response.status_code == 403
    assert not RenewalRun.objects.exists()

    response = renew_by_api(admin, not_due, force=True)
    assert response.status_code == 202
    run = RenewalRun.objects.get(certificate=not_due)
    assert response.json()["id"] == run.pk and run.trigger == RenewalRun.Trigger.API
    event = forced_events().get()
    assert event.user == admin and event.params["price"] == "1100.00"


def test_the_api_says_which_values_force_takes(not_due, admin):
    response = renew_by_api(admin, not_due, force="perhaps")
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "force"


# -- manage.py renew ---------------------------------------------------------------


def test_manage_py_renew_needs_force_before_the_window_and_audits_it(not_due, monkeypatch):
    monkeypatch.setattr(issuance, "connect_ca", lambda ca_account: CraftedCA(
        lambda csr: leaf_for(csr.public_key(), not_due.names())))
    RenewalRun.objects.filter(certificate=not_due).delete()
    from certificates.models import Deployment

    Deployment.objects.filter(certificate=not_due).delete()  # nothing to deploy to
    deposit.top_up(ca_account=not_due.ca_account, amount=Decimal("1100"))
    balance = not_due.ca_account.balance()

    with pytest.raises(CommandError, match="--force"):
        call_command("renew", str(not_due.pk), stdout=io.StringIO())
    assert not RenewalRun.objects.exists()

    call_command("renew", str(not_due.pk), "--force", stdout=io.StringIO())
    run = RenewalRun.objects.get(certificate=not_due)
    assert run.status == RenewalRun.Status.SUCCEEDED, run.error
    assert not_due.ca_account.balance() == balance - Decimal("1100")
    event = forced_events().get()
    assert event.user is None and event.params["run"] == run.pk


def test_manage_py_renew_prints_times_in_the_organisations_time_zone(not_due, monkeypatch):
    monkeypatch.setattr(issuance, "connect_ca", lambda ca_account: CraftedCA(
        lambda csr: leaf_for(csr.public_key(), not_due.names())))
    RenewalRun.objects.filter(certificate=not_due).delete()
    from certificates.models import Deployment

    Deployment.objects.filter(certificate=not_due).delete()  # nothing to deploy to
    deposit.top_up(ca_account=not_due.ca_account, amount=Decimal("1100"))
    zone = zoneinfo.ZoneInfo("America/Sao_Paulo")  # neither UTC nor the portal's zone
    not_due.organization.time_zone = zone.key
    not_due.organization.save()

    with pytest.raises(CommandError) as refused:
        call_command("renew", str(not_due.pk), stdout=io.StringIO())
    local_expiry = timezone.localtime(not_due.current_version.not_after, zone)
    assert f"valid until {local_expiry:%Y-%m-%d %H:%M} " in str(refused.value)
    assert zone.key in str(refused.value)

    out = io.StringIO()
    call_command("renew", str(not_due.pk), "--force", stdout=out)
    run = RenewalRun.objects.get(certificate=not_due)
    for step in run.steps.all():
        assert f"  {timezone.localtime(step.at, zone):%H:%M:%S} {step.get_name_display()}" \
            in out.getvalue()
    assert f"({zone.key}); SHA-256" in out.getvalue()


# -- the daily limit on paid renewals ------------------------------------------------


@pytest.fixture
def limit_reached(organization, not_due, settings):
    """One paid issuance today, and a limit of one."""
    settings.PAID_ISSUANCES_PER_DAY = 1
    RenewalRun.objects.create(certificate=not_due, trigger=RenewalRun.Trigger.MANUAL,
                              status=RenewalRun.Status.SUCCEEDED,
                              version=not_due.current_version)
    due = certificate(organization, not_due.ca_account, common_name="due.example.test",
                      sans=["due.example.test"])
    return due


def test_a_renewal_past_the_daily_number_of_paid_ones_is_refused_with_a_message(
    client, limit_reached, operator
):
    client.force_login(operator)
    response = client.post(reverse("certificates:renew", args=[limit_reached.pk]),
                           {"confirm": "1"}, follow=True)
    assert "started 1 paid renewals in the last 24 hours" in response.content.decode()
    assert not RenewalRun.objects.filter(certificate=limit_reached).exists()

    response = renew_by_api(operator, limit_reached)
    assert response.status_code == 409
    assert response.json()["errors"][0]["code"] == "paid_issuance_limit"
    assert not RenewalRun.objects.filter(certificate=limit_reached).exists()


def test_the_daily_limit_holds_back_no_automatic_renewal_and_no_free_one(
    client, organization, limit_reached, operator, monkeypatch
):
    from certificates import tasks

    monkeypatch.setattr(tasks.renew, "delay", lambda run_id: None)
    assert renewal.scan() and RenewalRun.objects.filter(certificate=limit_reached).exists()

    free = certificate(organization, ca_account(organization, name="Free", price=Decimal("0")),
                       common_name="free.example.test", sans=["free.example.test"])
    client.force_login(operator)
    client.post(reverse("certificates:renew", args=[free.pk]), {"confirm": "1"})
    assert RenewalRun.objects.filter(certificate=free).exists()
