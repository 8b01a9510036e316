"""Webhooks reach a receiver on loopback, signed; failures are retried with backoff
kept in the database, and every delivery is recorded."""

import json
import threading
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.utils import timezone

from api import webhooks
from api.models import Webhook, WebhookDelivery

pytestmark = pytest.mark.django_db

SECRET = "s3cret-for-signing"


class Receiver:
    """A real HTTP server on 127.0.0.1 that records what it receives."""

    def __init__(self, status=204):
        self.requests, self.status = [], status
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.requests.append((dict(self.headers), body))
                self.send_response(receiver.status)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    server = Receiver()
    yield server
    server.stop()


def hook(organization, url, events=("renewal.succeeded",)):
    return Webhook.objects.create(organization=organization, url=url, secret=SECRET,
                                  events=list(events))


def test_an_event_reaches_the_receiver_with_a_signature_that_verifies(
        organization, receiver, django_capture_on_commit_callbacks, monkeypatch):
    from api import tasks

    monkeypatch.setattr(tasks.deliver_webhook, "delay", tasks.deliver_webhook)  # run inline
    hook(organization, receiver.url)
    with django_capture_on_commit_callbacks(execute=True):
        [delivery] = webhooks.emit("renewal.succeeded", organization=organization,
                                   payload={"certificate": {"id": 7, "common_name": "a.test"}})
    assert len(receiver.requests) == 1
    headers, body = receiver.requests[0]
    assert webhooks.verify(SECRET, body, headers["X-Portal-Signature"])
    assert headers["X-Portal-Signature"].startswith("sha256=")
    assert abs(int(headers["X-Portal-Timestamp"]) - timezone.now().timestamp()) < 60
    assert headers["X-Portal-Event"] == "renewal.succeeded"
    sent = json.loads(body)
    assert sent["event"] == "renewal.succeeded" and sent["id"] == delivery.pk
    assert sent["data"] == {"certificate": {"id": 7, "common_name": "a.test"}}
    delivery.refresh_from_db()
    assert delivery.status == "delivered" and delivery.status_code == 204
    assert delivery.attempts == 1 and delivery.delivered_at is not None
    assert not webhooks.verify("another secret", body, headers["X-Portal-Signature"])


def test_only_subscribed_active_webhooks_of_the_organisation_get_the_event(
        organization, other_organization, receiver):
    hook(organization, receiver.url, events=["deposit.low"])
    hook(other_organization, receiver.url, events=["renewal.failed"])
    Webhook.objects.create(organization=organization, url=receiver.url, secret=SECRET,
                           events=["renewal.failed"], active=False)
    assert webhooks.emit("renewal.failed", organization=organization, payload={}) == []
    assert len(webhooks.emit("deposit.low", organization=organization, payload={})) == 1


def test_dates_and_amounts_in_a_payload_are_sent_as_text(organization):
    from decimal import Decimal

    hook(organization, "http://127.0.0.1:9/", events=["deposit.low"])
    when = timezone.now()
    [delivery] = webhooks.emit("deposit.low", organization=organization,
                               payload={"balance": Decimal("12.50"), "at": when})
    delivery.refresh_from_db()
    assert delivery.payload["data"]["balance"] == "12.50"
    assert delivery.payload["data"]["at"].startswith(when.isoformat()[:19])


def test_an_unknown_event_is_refused(organization):
    with pytest.raises(ValueError):
        webhooks.emit("renewal.maybe", organization=organization, payload={})


def test_a_failing_receiver_is_retried_with_backoff_then_given_up(organization):
    failing = Receiver(status=500)
    try:
        hook(organization, failing.url)
        [delivery] = webhooks.emit("renewal.succeeded", organization=organization, payload={})
        now = timezone.now()
        first = webhooks.deliver(delivery.pk)
        assert first.status == "pending" and first.attempts == 1
        assert first.status_code == 500 and "HTTP 500" in first.error
        assert first.next_attempt_at - now >= timedelta(seconds=55)
        # Not due yet: nobody sends it again before its time.
        assert webhooks.deliver(delivery.pk) is None
        assert webhooks.due_deliveries() == []
        for attempt in range(2, webhooks.MAX_ATTEMPTS + 1):
            later = WebhookDelivery.objects.get(pk=delivery.pk).next_attempt_at
            assert delivery.pk in webhooks.due_deliveries(now=later)
            result = webhooks.deliver(delivery.pk, now=later)
            assert result.attempts == attempt
        assert result.status == "failed" and result.next_attempt_at is None
        assert len(failing.requests) == webhooks.MAX_ATTEMPTS
        # The same signed bytes every time.
        assert len({body for _headers, body in failing.requests}) == 1
    finally:
        failing.stop()


def test_an_unreachable_receiver_is_recorded_as_an_error(organization):
    from testbed.ports import free_port

    hook(organization, f"http://127.0.0.1:{free_port('127.0.0.1')}/")
    [delivery] = webhooks.emit("renewal.succeeded", organization=organization, payload={})
    result = webhooks.deliver(delivery.pk)
    assert result.status == "pending" and result.status_code is None
    assert "ConnectionError" in result.error


def test_the_secret_is_encrypted_at_rest(organization):
    from django.db import connection

    hook(organization, "http://127.0.0.1:9/")
    with connection.cursor() as cursor:
        cursor.execute("SELECT secret FROM api_webhook")
        [(stored,)] = cursor.fetchall()
    assert SECRET not in stored


def test_an_administrator_manages_webhooks_over_the_api(owner, organization, as_user):
    api = as_user(owner)
    response = api.post("/api/v1/webhooks/", {
        "url": "https://hooks.example.test/portal", "secret": "a-long-enough-secret",
        "events": ["renewal.failed", "deposit.low", "renewal.failed"]}, format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert "secret" not in body and body["events"] == ["deposit.low", "renewal.failed"]
    assert body["organization"] == organization.pk
    webhook = Webhook.objects.get(pk=body["id"])
    assert webhook.secret == "a-long-enough-secret"
    url = f"/api/v1/webhooks/{webhook.pk}/"
    assert api.patch(url, {"active": False}, format="json").json()["active"] is False
    assert Webhook.objects.get(pk=webhook.pk).secret == "a-long-enough-secret"  # kept
    webhook.active = True
    webhook.save()
    webhooks.emit("deposit.low", organization=organization, payload={"balance": "0"})
    deliveries = api.get(f"{url}deliveries/").json()["results"]
    assert [d["event"] for d in deliveries] == ["deposit.low"]
    bad = api.post("/api/v1/webhooks/", {"url": "ftp://x", "secret": "short",
                                         "events": ["nope"]}, format="json")
    assert bad.status_code == 400
    fields = {e["field"] for e in bad.json()["errors"]}
    assert {"url", "secret"} <= fields and any(f.startswith("events") for f in fields)
    assert api.delete(url).status_code == 204


def test_webhooks_are_for_administrators_and_their_organisation_only(
        owner, operator, outsider, organization, as_user):
    webhook = hook(organization, "https://hooks.example.test/")
    assert as_user(operator).get("/api/v1/webhooks/").json()["count"] == 0
    assert as_user(operator).get(f"/api/v1/webhooks/{webhook.pk}/").status_code == 404
    assert as_user(outsider).get(f"/api/v1/webhooks/{webhook.pk}/").status_code == 404
    assert as_user(outsider).delete(f"/api/v1/webhooks/{webhook.pk}/").status_code == 404
    assert as_user(owner).get(f"/api/v1/webhooks/{webhook.pk}/").status_code == 200
