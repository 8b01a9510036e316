"""Notification channels through the API, as in the browser: administrators
only, audited, the apprise URL write-only and encrypted at rest, and a test
message received by a real HTTP server on loopback."""

import pytest
from django.db import connection
from rest_framework.test import APIClient

from certificates.models import AuditEvent, NotificationChannel

pytestmark = pytest.mark.django_db


def api_of(user):
    api = APIClient(HTTP_ACCEPT_LANGUAGE="en")
    api.force_authenticate(user)
    return api


def errors_of(response, field):
    """The messages for `field`, and for its items ("kinds.1")."""
    return " ".join(e["message"] for e in response.data["errors"]
                    if e["field"].split(".")[0] == field)


def add(api, receiver, **changes):
    return api.post("/api/v1/channels/", {
        "name": "ops", "url": receiver.url, "kinds": ["renewal_failed", "expiring"],
        "language": "en", **changes}, format="json")


def test_an_administrator_adds_a_channel_whose_url_is_never_answered(admin, organization,
                                                                     receiver):
    response = add(api_of(admin), receiver)

    assert response.status_code == 201, response.data
    assert "s3cret-pw" not in response.content.decode()
    assert response.data["shown"].startswith("json://ops:****@127.0.0.1")
    channel = NotificationChannel.objects.get()
    assert channel.organization == organization and channel.url == receiver.url
    listed = api_of(admin).get("/api/v1/channels/")
    assert "s3cret-pw" not in listed.content.decode()
    event = AuditEvent.objects.get(action=AuditEvent.Action.CHANNEL_CREATED)
    assert event.user == admin and event.params["via"] == "api"


def test_the_url_is_encrypted_at_rest(admin, receiver):
    add(api_of(admin), receiver)

    with connection.cursor() as cursor:
        cursor.execute(f"SELECT url FROM {NotificationChannel._meta.db_table}")
        (stored,), = cursor.fetchall()
    assert "s3cret-pw" not in stored and "127.0.0.1" not in stored


def test_the_test_message_arrives_at_the_receiver(admin, receiver):
    api = api_of(admin)
    channel_id = add(api, receiver).data["id"]

    response = api.post(f"/api/v1/channels/{channel_id}/test/")

    assert response.status_code == 200 and response.data == {"sent": True, "error": ""}
    assert len(receiver.received) == 1
    assert "Test message" in receiver.received[0]["title"]


def test_a_change_keeps_the_stored_url_and_is_audited(admin, receiver):
    api = api_of(admin)
    channel_id = add(api, receiver).data["id"]

    response = api.patch(f"/api/v1/channels/{channel_id}/",
                         {"kinds": ["deposit_low"], "enabled": False}, format="json")

    assert response.status_code == 200, response.data
    channel = NotificationChannel.objects.get()
    assert channel.url == receiver.url and channel.kinds == ["deposit_low"]
    event = AuditEvent.objects.get(action=AuditEvent.Action.CHANNEL_CHANGED)
    assert sorted(event.params["fields"]) == ["enabled", "kinds"]


def test_a_url_apprise_does_not_know_is_refused_naming_the_field(admin):
    response = api_of(admin).post("/api/v1/channels/", {
        "name": "ops", "url": "nosuchscheme://x", "kinds": []}, format="json")

    assert response.status_code == 400
    assert "apprise does not understand" in errors_of(response, "url")
    assert not NotificationChannel.objects.exists()


def test_an_unknown_alert_kind_names_the_allowed_ones(admin, receiver):
    response = add(api_of(admin), receiver, kinds=["renewal_failed", "gossip"])

    assert response.status_code == 400 and "renewal_failed" in errors_of(response, "kinds")


def test_a_second_channel_of_the_same_name_is_refused(admin, receiver):
    api = api_of(admin)
    add(api, receiver)

    response = add(api, receiver)

    assert response.status_code == 400 and NotificationChannel.objects.count() == 1


def test_removal_is_audited(admin, receiver):
    api = api_of(admin)
    channel_id = add(api, receiver).data["id"]

    assert api.delete(f"/api/v1/channels/{channel_id}/").status_code == 204
    assert not NotificationChannel.objects.exists()
    assert AuditEvent.objects.filter(action=AuditEvent.Action.CHANNEL_DELETED).exists()


def test_operators_neither_see_nor_add_channels(admin, operator, receiver):
    channel_id = add(api_of(admin), receiver).data["id"]
    api = api_of(operator)

    assert api.get("/api/v1/channels/").data["results"] == []
    assert api.get(f"/api/v1/channels/{channel_id}/").status_code == 404
    assert add(api, receiver, name="mine").status_code == 403


def test_another_organisations_channel_is_not_found(admin, outsider, receiver):
    channel_id = add(api_of(admin), receiver).data["id"]
    api = api_of(outsider)

    assert api.post(f"/api/v1/channels/{channel_id}/test/").status_code == 404
    assert api.delete(f"/api/v1/channels/{channel_id}/").status_code == 404
    assert receiver.received == [] and NotificationChannel.objects.exists()
