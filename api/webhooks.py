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
import json
import logging
import time

import requests
from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

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
    from .tasks import deliver_webhook

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
        transaction.on_commit(lambda pk=delivery.pk: deliver_webhook.delay(pk))
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
    status_code, error = None, ""
    try:
        # No redirects: a receiver cannot bounce a signed body elsewhere.
        response = requests.post(webhook.url, data=body, headers=headers, timeout=TIMEOUT,
                                 allow_redirects=False)
        status_code = response.status_code
        if not 200 <= status_code < 300:
            error = f"HTTP {status_code}: {response.text[:500]}"
    except requests.RequestException as exc:
        error = f"{type(exc).__name__}: {exc}"[:1000]
    return _record(delivery, status_code, error)


def _record(delivery, status_code, error) -> WebhookDelivery:
    now = timezone.now()
    attempts = delivery.attempts + 1
    fields = {"attempts": attempts, "status_code": status_code, "error": error}
    if not error:
        fields.update(status=WebhookDelivery.Status.DELIVERED, delivered_at=now,
                      next_attempt_at=None)
    elif attempts >= MAX_ATTEMPTS:
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
