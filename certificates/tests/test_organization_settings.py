"""The organisation's name and time zone, changed by an administrator on the
members page, audited; a time zone not in the IANA database is a field error."""

import pytest
from django.urls import reverse

from certificates.models import AuditEvent

pytestmark = pytest.mark.django_db


def test_an_administrator_renames_the_organisation_and_sets_its_time_zone(
        client, admin, organization):
    client.force_login(admin)
    assert 'id="organization-settings"' in client.get(
        reverse("certificates:members")).content.decode()

    response = client.post(reverse("certificates:organization_settings"),
                           {"name": "Msen Inc.", "time_zone": "Europe/Berlin"})

    assert response.status_code == 302
    organization.refresh_from_db()
    assert (organization.name, organization.time_zone) == ("Msen Inc.", "Europe/Berlin")
    event = AuditEvent.objects.get(action=AuditEvent.Action.ORGANIZATION_CHANGED)
    assert sorted(event.params["fields"]) == ["name", "time_zone"]


def test_an_unknown_time_zone_is_a_field_error(client, admin, organization):
    client.force_login(admin)

    response = client.post(reverse("certificates:organization_settings"),
                           {"name": "Msen", "time_zone": "Asia/Tokio"})

    assert response.status_code == 200
    assert "time_zone" in response.context["organization_form"].errors
    organization.refresh_from_db()
    assert organization.time_zone != "Asia/Tokio"


def test_operators_may_not(client, operator, organization):
    client.force_login(operator)

    response = client.post(reverse("certificates:organization_settings"),
                           {"name": "Mine", "time_zone": "UTC"})

    assert response.status_code == 403
    organization.refresh_from_db()
    assert organization.name == "Msen"
    assert 'id="organization-settings"' not in client.get(
        reverse("certificates:members")).content.decode()
