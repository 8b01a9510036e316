"""A person's own settings: e-mail address (asking for the password again),
language, time zone for pages, and which alerts they get by e-mail."""

import datetime

import pytest
from django.core import mail
from django.urls import reverse

from accounts.tests.factors import reauthenticate
from certificates import alerts
from certificates.models import AuditEvent, Notification

from . import factories

pytestmark = pytest.mark.django_db


def form(**fields):
    return {"email": "new@example.test", "language": "en", "time_zone": "",
            "alerts": ["renewal_failed", "deposit_low"], **fields}


def test_a_person_sets_their_address_and_the_next_alert_goes_there(client, owner,
                                                                   organization):
    client.force_login(owner)
    reauthenticate(client, owner)
    response = client.post(reverse("certificates:profile"), form(
        alerts=[k for k in Notification.Kind.values]))
    assert response.status_code == 302, response.content.decode()[:2000]
    owner.refresh_from_db()
    assert owner.email == "new@example.test"
    event = AuditEvent.objects.get(action=AuditEvent.Action.PROFILE_CHANGED)
    assert "email" in event.params["fields"]
    cert = factories.certificate(organization, factories.ca_account(organization,
                                                                    contact_email=""))
    alerts.notify("renewal_failed", certificate=cert, event="first")
    assert [m.to for m in mail.outbox] == [["new@example.test"]]


def test_changing_the_address_asks_for_the_password_again(client, owner):
    client.force_login(owner)
    response = client.post(reverse("certificates:profile"), form())
    assert response.status_code == 302
    assert "reauthenticate" in response["Location"]
    owner.refresh_from_db()
    assert owner.email != "new@example.test"


def test_an_alert_turned_off_is_not_mailed_to_that_person(client, owner, organization):
    owner.email = "owner@example.test"
    owner.save()
    client.force_login(owner)
    client.post(reverse("certificates:profile"), form(email="owner@example.test",
                                                      alerts=["deposit_low"]))
    owner.refresh_from_db()
    assert "renewal_failed" in owner.muted_alerts and "deposit_low" not in owner.muted_alerts
    cert = factories.certificate(organization, factories.ca_account(organization,
                                                                    contact_email=""))
    alerts.notify("renewal_failed", certificate=cert, event="first")
    assert mail.outbox == []


def test_a_personal_time_zone_shows_page_times_in_it(client, owner, organization):
    organization.time_zone = "Asia/Tokyo"
    organization.save()
    owner.email = "owner@example.test"
    owner.time_zone = "America/New_York"
    owner.save()
    cert = factories.certificate(organization, factories.ca_account(organization))
    cert.expires_at = datetime.datetime(2030, 1, 15, 3, 0, tzinfo=datetime.UTC)
    cert.save()
    client.force_login(owner)
    html = client.get(reverse("certificates:certificates"),
                      HTTP_ACCEPT_LANGUAGE="en").content.decode()
    # 03:00 UTC on the 15th is the 14th in New York (and the 15th in Tokyo).
    assert "14 Jan 2030" in html and "15 Jan 2030" not in html


def test_an_unknown_time_zone_is_refused_naming_the_field(client, owner):
    owner.email = "owner@example.test"
    owner.save()
    client.force_login(owner)
    response = client.post(reverse("certificates:profile"), form(
        email="owner@example.test", time_zone="Mars/Olympus"))
    assert response.status_code == 200
    assert response.context["form"].errors.keys() == {"time_zone"}
    owner.refresh_from_db()
    assert owner.time_zone == ""
