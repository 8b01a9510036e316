"""Notification channels through apprise, received by a real HTTP server on
loopback (apprise's JSON webhook target): the test button, alerts of the
chosen kinds in the channel's language, once per event, and the egress policy."""

import re

import pytest
from django.urls import reverse

from accounts.tests.factors import give_totp
from certificates import alerts, tasks
from certificates.models import AuditEvent, Notification, NotificationChannel
from certificates.notify import channels

from . import factories

JAPANESE = re.compile(r"[\u3040-\u30ff\u4e00-\u9fff]")


@pytest.fixture
def delivered_here(monkeypatch):
    """The delivery task run in this process when enqueued (the broker's part)."""
    monkeypatch.setattr(tasks.deliver_to_channel, "delay",
                        lambda pk, title, body: channels.deliver(pk, title, body))


def channel(organization, receiver, **fields):
    return NotificationChannel.objects.create(
        organization=organization, name="ops", url=receiver.url,
        kinds=[Notification.Kind.RENEWAL_FAILED], **fields)


def test_an_administrator_adds_a_channel_and_its_test_message_arrives(client, organization,
                                                                      admin, receiver):
    client.force_login(admin)
    response = client.post(reverse("certificates:channel_create"), {
        "name": "ops", "url": receiver.url, "kinds": ["renewal_failed", "expiring"],
        "language": "en", "enabled": "on"})
    assert response.status_code == 302, response.content.decode()[:2000]
    made = NotificationChannel.objects.get()
    assert made.shown.startswith("json://ops:****@127.0.0.1")
    assert AuditEvent.objects.filter(action=AuditEvent.Action.CHANNEL_CREATED).exists()
    listing = client.get(reverse("certificates:channels")).content.decode()
    assert "s3cret-pw" not in listing and "127.0.0.1" in listing  # the secret masked

    client.post(reverse("certificates:channel_test", args=[made.pk]))
    [message] = receiver.received
    assert message["title"] == "Test message from the certificate portal"
    assert "ops" in message["message"]
    made.refresh_from_db()
    assert made.last_sent_at is not None and made.last_error == ""


def test_a_url_apprise_does_not_know_is_refused_naming_the_field(client, organization, admin):
    client.force_login(admin)
    response = client.post(reverse("certificates:channel_create"), {
        "name": "ops", "url": "nosuchservice://x", "kinds": ["renewal_failed"],
        "language": "en"})
    assert response.status_code == 200
    assert "apprise does not understand" in response.content.decode()
    assert not NotificationChannel.objects.exists()


def test_operators_do_not_see_channels(client, organization, operator):
    client.force_login(operator)
    assert client.get(reverse("certificates:channels")).status_code == 403


def test_an_alert_of_a_chosen_kind_arrives_once_in_the_channels_language(
        organization, receiver, delivered_here, django_capture_on_commit_callbacks,
        django_user_model):
    owner = django_user_model.objects.create_user(username="o", email="o@example.test")
    organization.memberships.create(user=owner, role="owner")
    give_totp(owner)
    channel(organization, receiver, language="ja")
    ca = factories.ca_account(organization)
    cert = factories.certificate(organization, ca)
    with django_capture_on_commit_callbacks(execute=True):
        alerts.notify("renewal_failed", certificate=cert, event="first")
        alerts.notify("renewal_failed", certificate=cert, event="first")  # told already
        alerts.notify("expiring", certificate=cert, extra={"days": 3})  # not chosen
    [message] = receiver.received
    assert cert.common_name in message["title"]
    assert JAPANESE.search(message["title"] + message["message"])
    assert "You receive this mail" not in message["message"]


def test_a_channel_outside_the_egress_policy_is_not_reached(
        organization, receiver, settings):
    settings.OUTBOUND_ALLOW = []
    made = channel(organization, receiver)
    ok, error = channels.test(made)
    assert not ok
    assert receiver.received == []
    assert "not allowed" in error or "refused" in error.lower(), error


# -- webhooks in the browser ----------------------------------------------------------


def test_an_administrator_adds_edits_and_removes_a_webhook_in_the_browser(client, admin,
                                                                          organization):
    from api.models import Webhook

    client.force_login(admin)
    response = client.post(reverse("certificates:webhook_create"), {
        "url": "http://127.0.0.1:9/hook", "secret": "a-long-enough-secret",
        "events": ["renewal.failed"], "active": "on"})
    assert response.status_code == 302, response.content.decode()[:3000]
    hook = Webhook.objects.get()
    page = client.get(reverse("certificates:webhooks")).content.decode()
    assert "http://127.0.0.1:9/hook" in page and "a-long-enough-secret" not in page
    # A blank secret keeps the stored one; a new URL asks for it again.
    client.post(reverse("certificates:webhook_edit", args=[hook.pk]), {
        "url": "http://127.0.0.1:9/hook", "secret": "", "events": ["deposit.low"],
        "active": "on"})
    hook.refresh_from_db()
    assert hook.events == ["deposit.low"] and hook.secret == "a-long-enough-secret"
    refused = client.post(reverse("certificates:webhook_edit", args=[hook.pk]), {
        "url": "http://127.0.0.2:9/other", "secret": "", "events": ["deposit.low"],
        "active": "on"})
    assert refused.status_code == 200 and "secret" in refused.context["form"].errors
    client.post(reverse("certificates:webhook_delete", args=[hook.pk]))
    assert not Webhook.objects.exists()
    assert AuditEvent.objects.filter(action=AuditEvent.Action.WEBHOOK_DELETED).exists()


def test_operators_do_not_see_webhooks(client, operator):
    client.force_login(operator)
    assert client.get(reverse("certificates:webhooks")).status_code == 403
