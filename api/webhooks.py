"""Outbound webhooks: the seam to organisations' own receivers.

`emit()` records one delivery per subscribed webhook and enqueues it after the
transaction commits; `deliver()` claims it with a guarded UPDATE, POSTs the
signed body outside any transaction, and records the outcome. Backoff lives in
`next_attempt_at`; the beat task `api.retry_webhooks` picks up what is due.

Receivers verify ``X-Portal-Signature: sha256=<hex>``, the HMAC-SHA256 of the
raw request body under the webhook's secret. The body carries the delivery id
(for de-duplication of retries) and the time the event happened.
"""

import datetime
import hashlib
import hmac
import ipaddress
import json
import logging
import time
from urllib.parse import urlsplit

import requests
from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from fujissl_portal import egress

from . import tasks
from .models import Event, Webhook, WebhookDelivery

logger = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Portal-Signature"
TIMESTAMP_HEADER = "X-Portal-Timestamp"
EVENT_HEADER = "X-Portal-Event"
DELIVERY_HEADER = "X-Portal-Delivery"
TIMEOUT = 10
# 1 min, 5 min, 25 min, ~2 h, ~10 h, then give up: a day of tries in all.
BACKOFF = [datetime.timedelta(minutes=m) for m in (1, 5, 25, 125, 625)]
MAX_ATTEMPTS = len(BACKOFF) + 1
# A delivery still "sending" this long after its claim lost its worker.
SENDING_LEASE = datetime.timedelta(minutes=5)
# No more of a receiver's answer is ever read (the connection is dropped there),
# and no more than EXCERPT_CHARS of it is kept, and only from a public receiver.
READ_LIMIT = 4 * 1024
EXCERPT_CHARS = 200


def sign(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify(secret: str, body: bytes, signature: str) -> bool:
    """What a receiver does (here for tests and for receivers written in Python)."""
    return hmac.compare_digest(sign(secret, body), signature or "")


def body_of(delivery: WebhookDelivery) -> bytes:
    # The same bytes on every attempt, so a retried delivery verifies the same way.
    return json.dumps(delivery.payload, sort_keys=True, separators=(",", ":"),
                      default=str).encode()


def emit(event: str, *, organization, payload: dict) -> list[WebhookDelivery]:
    """Record and enqueue `event` for each active webhook of `organization` that
    subscribed to it. Safe inside a transaction: sending starts after commit.
    `payload` is a dict of JSON values; dates, datetimes, decimals and UUIDs are
    turned into text as Django's JSON encoder does."""
    event = Event(event).value
    # Dates, decimals and UUIDs as JSON text, the way Django serialises them.
    payload = json.loads(json.dumps(payload, cls=DjangoJSONEncoder))
    deliveries = []
    for webhook in Webhook.objects.filter(organization=organization, active=True):
        if event not in (webhook.events or []):
            continue
        now = timezone.now()
        delivery = WebhookDelivery.objects.create(
            webhook=webhook, event=event, next_attempt_at=now, created_at=now, payload={})
        delivery.payload = {"id": delivery.pk, "event": event, "created_at": now.isoformat(),
                            "organization": {"id": organization.pk,
                                             "slug": organization.slug},
                            "data": payload}
        WebhookDelivery.objects.filter(pk=delivery.pk).update(payload=delivery.payload)
        transaction.on_commit(lambda pk=delivery.pk: tasks.deliver_webhook.delay(pk))
        deliveries.append(delivery)
    return deliveries


def emit_portal_event(sender, *, event, organization, payload, **kwargs):
    """Receiver of certificates.signals.portal_event: every event a webhook."""
    emit(event, organization=organization, payload=payload)


def claim(delivery_id, *, now=None) -> WebhookDelivery | None:
    now = now or timezone.now()
    claimed = WebhookDelivery.objects.filter(
        Q(status=WebhookDelivery.Status.PENDING, next_attempt_at__lte=now)
        | Q(status=WebhookDelivery.Status.SENDING, next_attempt_at__lte=now - SENDING_LEASE),
        pk=delivery_id,
    ).update(status=WebhookDelivery.Status.SENDING, next_attempt_at=now)
    if not claimed:
        return None
    return WebhookDelivery.objects.select_related("webhook").get(pk=delivery_id)


def deliver(delivery_id, *, now=None) -> WebhookDelivery | None:
    """One attempt; None when the delivery is not due or is held by another worker."""
    delivery = claim(delivery_id, now=now)
    if delivery is None:
        return None
    webhook = delivery.webhook
    body = body_of(delivery)
    headers = {"Content-Type": "application/json", "User-Agent": "certificate-portal-webhook",
               SIGNATURE_HEADER: sign(webhook.secret, body),
               TIMESTAMP_HEADER: str(int(time.time())), EVENT_HEADER: delivery.event,
               DELIVERY_HEADER: str(delivery.pk)}
    status_code, error, permanent = None, "", False
    host = urlsplit(webhook.url).hostname or ""
    try:
        if not egress.scheme_allowed(webhook.url):
            raise egress.Refused(host, None, "plain http")
        # No redirects: a receiver cannot bounce a signed body elsewhere.
        with egress.session(max_body=READ_LIMIT, truncate=True) as http:
            response = http.post(webhook.url, data=body, headers=headers, timeout=TIMEOUT,
                                 allow_redirects=False)
        status_code = response.status_code
        if not 200 <= status_code < 300:
            error = f"HTTP {status_code}"
            if _may_show(response):
                error += f": {excerpt(response.content)}"
    except egress.Refused as exc:
        logger.warning("webhook %s: %s refused by the outbound policy (%s)", webhook.pk,
                       webhook.url, exc.reason)
        error, permanent = f"Refused: {host} is not allowed by the outbound policy", True
    except requests.RequestException as exc:
        # Refused, timed out or dropped: one text, so that deliveries cannot tell
        # what listens on which port; the log has the detail.
        logger.info("webhook delivery %s to %s failed: %r", delivery.pk, webhook.url, exc)
        error = f"ConnectionError: no answer from {host}"
    return _record(delivery, status_code, error, permanent=permanent)


def _may_show(response) -> bool:
    # An internal service allowed by the operator is not the tenant's to read.
    peer = getattr(response, "peer_address", None)
    return peer is not None and not egress.is_restricted(
        ipaddress.ip_address(peer.split("%", 1)[0]))


def excerpt(content: bytes) -> str:
    """The start of an answer as one line of printable text, at most EXCERPT_CHARS."""
    text = content[:READ_LIMIT].decode("utf-8", "replace")
    text = "".join(c if c.isprintable() else " " for c in text)
    return " ".join(text.split())[:EXCERPT_CHARS]


def _record(delivery, status_code, error, *, permanent=False) -> WebhookDelivery:
    now = timezone.now()
    attempts = delivery.attempts + 1
    fields = {"attempts": attempts, "status_code": status_code, "error": error}
    if not error:
        fields.update(status=WebhookDelivery.Status.DELIVERED, delivered_at=now,
                      next_attempt_at=None)
    elif permanent or attempts >= MAX_ATTEMPTS:
        fields.update(status=WebhookDelivery.Status.FAILED, next_attempt_at=None)
        logger.warning("webhook delivery %s gave up after %s attempts: %s", delivery.pk,
                       attempts, error)
    else:
        fields.update(status=WebhookDelivery.Status.PENDING,
                      next_attempt_at=now + BACKOFF[attempts - 1])
    WebhookDelivery.objects.filter(pk=delivery.pk).update(**fields)
    for name, value in fields.items():
        setattr(delivery, name, value)
    return delivery


def due_deliveries(*, now=None, limit=500) -> list[int]:
    now = now or timezone.now()
    return list(WebhookDelivery.objects.filter(
        Q(status=WebhookDelivery.Status.PENDING, next_attempt_at__lte=now)
        | Q(status=WebhookDelivery.Status.SENDING, next_attempt_at__lte=now - SENDING_LEASE),
    ).order_by("next_attempt_at").values_list("pk", flat=True)[:limit])
