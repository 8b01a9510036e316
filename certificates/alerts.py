"""E-mail alerts: what needs a person, told to the people who can act on it.

``notify(kind, ...)`` mails the organisation's owners and admins and the CA
account's contact, each in their own language, and records every mail as a
Notification row with its outcome. It never raises because a mail could not be
sent: an alert must not turn a renewal into a failure.

Call it outside ``transaction.atomic()`` (after the commit, e.g. from
``transaction.on_commit``): it talks to the SMTP server, and no transaction may
be held across network I/O (DESIGN.md, house style 4).

What each kind is given (besides the organisation, taken from the certificate
or the CA account, and the CA account, taken from the certificate if absent):

``renewal_failed``
    ``run`` (its ``error``, ``error_class`` transient/permanent, ``problem``),
    ``certificate``; ``extra`` may carry ``next_attempt_at`` (a datetime).
``deposit_low``
    ``ca_account``; ``extra``: ``balance``, ``threshold``, ``needed_30d``
    (Decimals) and ``runs_out_on`` (a date, or None).
``deposit_insufficient``
    ``ca_account``, ``certificate``, ``run``; ``extra``: ``balance``, ``price``,
    ``missing`` (Decimals).
``not_served``
    ``certificate``, ``run``; ``extra``: ``host`` (its name), ``expected`` (the
    SHA-256 fingerprint deployed, hex) and ``served`` (the one the host
    presented, hex, or "" when none could be read).
``expiring``
    ``certificate``; ``extra``: ``days`` (it expires within that many days).
``agent_silent``
    ``host`` (an agent host); ``extra``: ``last_seen`` (a datetime) and
    ``interval`` (seconds).
``expired``
    ``certificate``; ``extra``: ``hosts`` (their names, comma-separated) and
    ``expired_at`` (a datetime): hosts still serve a version that has expired.
``run_stuck``
    ``certificate``, ``run``; ``extra``: ``since`` (a datetime, when it opened).

A mail the SMTP server refuses is retried (``retry_unsent``, every minute),
made again from the parameters kept on its row: the run's id and ``extra``.
``unmanaged_expiring``
    ``inventory`` (a certificate managed elsewhere that no monitored endpoint
    serves); ``extra``: ``name``, ``days`` and ``where`` (where it was seen).
``endpoint_expiring``, ``endpoint_problem``, ``endpoint_changed``
    ``endpoint`` (a monitored endpoint, its served certificate managed
    elsewhere); ``extra``: ``name`` (the served certificate's common name),
    ``days`` (expiring), ``problems`` (sentences, in the reader's language:
    the problem dicts, rendered per mail) and ``fingerprint`` (changed).

Amounts are Decimals in ``ca_account.currency``; dates are shown in the
recipient's own time zone when they chose one, else in the organisation's.
"""

from __future__ import annotations

import logging
import re
import zoneinfo
from collections.abc import Callable
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.core.mail import EmailMultiAlternatives, get_connection
from django.db import models
from django.db.models import Q
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone, translation

from accounts.models import Membership, Organization, Role

from .formatting import Amount
from .inventory import verification
from .models import (
    CAAccount,
    Certificate,
    InventoryCertificate,
    MonitoredEndpoint,
    Notification,
    RenewalRun,
    TargetHost,
)
from .notify import channels

logger = logging.getLogger(__name__)

# Within this window the same event is not mailed again to the same person.
REPEAT_AFTER = timedelta(hours=24)
# A hung SMTP server must not hold a renewal worker forever (Django's default is
# no timeout at all); EMAIL_TIMEOUT, when set, wins.
SMTP_TIMEOUT = 30
# A mail the server refused is tried again after these, the last one repeated.
RETRY_STEPS = [timedelta(minutes=1), timedelta(minutes=5), timedelta(minutes=15),
               timedelta(hours=1)]
RETRY_BATCH = 500
RENDERING_FAILED = "rendering failed"


def recipients_for(organization: Organization, ca_account: CAAccount | None = None,
                   kind: str | None = None) -> list[tuple[str, str]]:
    """(address, language) of the owners and admins (those who did not turn
    ``kind`` off, if given), then the CA account's contact.

    An address is listed once, whatever its case; a member keeps their own
    language when they are also the CA contact.
    """
    memberships = (
        Membership.objects.filter(
            organization=organization, role__in=[Role.OWNER, Role.ADMIN], user__is_active=True
        )
        .exclude(user__email="")
        .select_related("user")
        .order_by("pk")
    )
    candidates = [(m.user.email, m.user.mail_language()) for m in memberships
                  if kind is None or m.user.wants_mail(kind)]
    if ca_account is not None and ca_account.contact_email:
        candidates.append((ca_account.contact_email, settings.LANGUAGE_CODE))
    seen: set[str] = set()
    recipients: list[tuple[str, str]] = []
    for address, language in candidates:
        if address.lower() not in seen:
            seen.add(address.lower())
            recipients.append((address, language))
    return recipients


def notify(kind: str, *, certificate: Certificate | None = None,
           ca_account: CAAccount | None = None, run: RenewalRun | None = None,
           host: TargetHost | None = None, endpoint: MonitoredEndpoint | None = None,
           inventory: InventoryCertificate | None = None, event: str = "", once: bool = False,
           extra: dict[str, Any] | None = None) -> list[Notification]:
    """Mail `kind` to everyone concerned who has not had it yet; the rows written.

    `once` holds an event back forever rather than for a day: for thresholds
    ("14d:version-<id>") that must be told once per certificate version.
    """
    kind = Notification.Kind(kind).value  # an unknown kind is a programming error
    if certificate is not None:
        if certificate.is_archived:  # out of service: nobody is to be told about it
            return []
        ca_account = ca_account or certificate.ca_account
    about = certificate or ca_account or host or endpoint or inventory
    if about is None:  # a programming error
        raise TypeError("an alert is about a certificate, a CA account, a host or an endpoint")
    organization = about.organization
    context = _context(kind, organization, certificate, ca_account, run, extra or {})
    _add_subject(context, host=host, endpoint=endpoint, inventory=inventory)

    # Told: sent, still to be retried, or not renderable (a bug, recorded once).
    # A mail the server refused until its retries gave up is not told.
    earlier = Notification.objects.filter(
        kind=kind, certificate=certificate, ca_account=ca_account, host=host,
        endpoint=endpoint, inventory_certificate=inventory, event=event,
    ).filter(Q(sent_at__isnull=False) | Q(next_attempt_at__isnull=False)
             | Q(error__startswith=RENDERING_FAILED))
    if not once:
        earlier = earlier.filter(created_at__gte=timezone.now() - REPEAT_AFTER)

    params = {"run": run.pk if run is not None else None, "extra": _encode(extra or {})}
    # The organisation's channels hear of an event once, as its first reader does.
    first_time = not earlier.exists()
    rows = []
    zones = member_zones(organization)
    for address, language in recipients_for(organization, ca_account, kind):
        if earlier.filter(recipient__iexact=address).exists():
            continue
        rows.append(_mail(kind, address, language, context, event=event, params=params,
                          zone=zones.get(address.lower(), "")))
    if first_time:
        channels.fan_out(kind, organization, lambda language: _for_channel(
            *_render(kind, language, context)[:2]))
    return rows


def _add_subject(context: dict[str, Any], **subjects: models.Model | None) -> None:
    """The host, endpoint or unmanaged certificate an alert is about, and its link."""
    pages = {"host": "certificates:host", "endpoint": "certificates:endpoint",
             "inventory": "certificates:inventory_certificate"}
    for name, subject in subjects.items():
        if subject is not None:
            context.update({name: subject, "link": _absolute(pages[name], subject)})


def retry_unsent(*, now: datetime | None = None) -> int:
    """Sends again the mails whose time to retry has come, each made again from
    its parameters in its recipient's language; the number sent. Each row is
    claimed with a guarded UPDATE, so two passes never send one mail twice."""
    now = now or timezone.now()
    sent = 0
    due = Notification.objects.filter(next_attempt_at__lte=now).values_list(
        "pk", "next_attempt_at")
    for pk, when in due[:RETRY_BATCH]:
        if not Notification.objects.filter(pk=pk, next_attempt_at=when).update(
                next_attempt_at=None):
            continue  # another pass has it
        row = Notification.objects.select_related(
            "organization", "certificate__ca_account", "ca_account", "host", "endpoint",
            "inventory_certificate").get(pk=pk)
        context = _context_of(row)
        zone = member_zones(row.organization).get(row.recipient.lower(), "")
        try:
            _, text, html = _render(row.kind, row.language, context, zone=zone)
        except Exception as exc:
            logger.exception("alert %s for %s could not be rendered", row.kind, row.recipient)
            row.error = f"{RENDERING_FAILED}: {type(exc).__name__}: {exc}"
            row.save(update_fields=["error"])
            continue
        sent += _send(row, text, html, now=now)
    return sent


def _encode(extra: dict[str, Any]) -> dict[str, Any]:
    """An alert's figures as JSON: amounts and dates keep their type."""
    encoded: dict[str, Any] = {}
    for key, value in extra.items():
        if isinstance(value, Decimal):
            value = {"decimal": str(value)}
        elif isinstance(value, datetime):
            value = {"datetime": value.isoformat()}
        elif isinstance(value, date):
            value = {"date": value.isoformat()}
        encoded[key] = value
    return encoded


def _decode(encoded: dict[str, Any]) -> dict[str, Any]:
    readers: dict[str, Callable[[str], Any]] = {
        "decimal": Decimal, "datetime": datetime.fromisoformat, "date": date.fromisoformat}
    extra: dict[str, Any] = {}
    for key, value in encoded.items():
        if isinstance(value, dict) and len(value) == 1 and next(iter(value)) in readers:
            (tag, text), = value.items()
            value = readers[tag](text)
        extra[key] = value
    return extra


def _absolute(url_name: str, obj: models.Model) -> str:
    return settings.PORTAL_BASE_URL.rstrip("/") + reverse(url_name, args=[obj.pk])


def _context(kind: str, organization: Organization, certificate: Certificate | None,
             ca_account: CAAccount | None, run: RenewalRun | None,
             extra: dict[str, Any]) -> dict[str, Any]:
    currency = ca_account.currency if ca_account is not None else ""
    context: dict[str, Any] = {
        # Written when each recipient's mail is rendered, in their language.
        key: Amount(value, currency) if isinstance(value, Decimal) else value
        for key, value in extra.items()
    }
    links = {
        "certificate_url": certificate and _absolute("certificates:certificate", certificate),
        "ca_account_url": ca_account and _absolute("certificates:ca_account", ca_account),
        "run_url": run and _absolute("certificates:run", run),
    }
    # The page where a person can act on this kind of alert.
    if kind in (Notification.Kind.DEPOSIT_LOW, Notification.Kind.DEPOSIT_INSUFFICIENT):
        link = links["ca_account_url"]
    else:
        link = links["run_url"] or links["certificate_url"]
    context.update(
        links, kind=kind, link=link, organization=organization, certificate=certificate,
        ca_account=ca_account, run=run,
    )
    return context


def member_zones(organization: Organization) -> dict[str, str]:
    """The time zones the members of `organization` chose for themselves, by
    address (lower case); a member without one reads the organisation's."""
    return {email.lower(): zone for email, zone in Membership.objects.filter(
        organization=organization, user__is_active=True).exclude(user__email="").exclude(
        user__time_zone="").values_list("user__email", "user__time_zone")}


def _zone(name: str, organization: Organization) -> zoneinfo.ZoneInfo:
    """`name`, or the organisation's zone when it is empty or unknown here."""
    for candidate in (name, organization.time_zone, settings.TIME_ZONE):
        try:
            return zoneinfo.ZoneInfo(candidate)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            continue
    return zoneinfo.ZoneInfo("UTC")


def _render(kind: str, language: str, context: dict[str, Any],
            zone: str = "") -> tuple[str, str, str]:
    """The mail in `language`, its times in `zone` (the recipient's own), else
    in the organisation's."""
    with translation.override(language), timezone.override(
            _zone(zone, context["organization"])):
        context = {**context, "title": Notification.Kind(kind).label}
        if "problems" in context:  # message keys, rendered in the reader's language
            context["problems"] = [verification.describe(p) for p in context["problems"]]
        # str, not SafeString: both are rewritten below.
        subject: str = render_to_string(f"emails/{kind}.subject.txt", context)
        text: str = render_to_string(f"emails/{kind}.txt", context)
        html = render_to_string(f"emails/{kind}.html", context)
    subject = f"[{context['organization'].name}] {' '.join(subject.split())}"
    # Template tags leave blank lines behind; a mail reads better without runs of them.
    text = re.sub(r"\n\s*\n(\s*\n)+", "\n\n", text).strip() + "\n"
    return subject[:300], text, html


def _for_channel(subject: str, text: str) -> tuple[str, str]:
    """A mail's subject and text as a channel message: without the mail's footer
    (why the recipient gets mail)."""
    return subject, text.split("\n--\n", 1)[0].strip()


def _context_of(row: Notification) -> dict[str, Any]:
    """What a stored mail was made from, to make it again (a retry)."""
    run = RenewalRun.objects.filter(pk=row.params.get("run")).first()
    context = _context(row.kind, row.organization, row.certificate, row.ca_account, run,
                       _decode(row.params.get("extra", {})))
    if row.host is not None:
        context.update(host=row.host, link=_absolute("certificates:host", row.host))
    if row.endpoint is not None:
        context.update(endpoint=row.endpoint,
                       link=_absolute("certificates:endpoint", row.endpoint))
    if row.inventory_certificate is not None:
        context.update(inventory=row.inventory_certificate, link=_absolute(
            "certificates:inventory_certificate", row.inventory_certificate))
    return context


def _mail(kind: str, address: str, language: str, context: dict[str, Any], *,
          event: str, params: dict[str, Any], zone: str = "") -> Notification:
    row = Notification(
        organization=context["organization"], certificate=context["certificate"],
        host=context.get("host") if isinstance(context.get("host"), TargetHost) else None,
        endpoint=context.get("endpoint"), inventory_certificate=context.get("inventory"),
        ca_account=context["ca_account"], kind=kind, event=event, recipient=address,
        language=language, params=params,
    )
    try:
        row.subject, text, html = _render(kind, language, context, zone=zone)
    except Exception as exc:
        # A template that cannot render for this data is a bug, but the alert is
        # still recorded, with why it did not go out.
        logger.exception("alert %s for %s could not be rendered", kind, address)
        row.subject = str(Notification.Kind(kind).label)
        row.error = f"{RENDERING_FAILED}: {type(exc).__name__}: {exc}"
        row.save()
        return row
    # The row exists before the mail leaves: a crash while sending leaves a trace.
    row.save()
    _send(row, text, html, now=timezone.now())
    return row


def _send(row: Notification, text: str, html: str, *, now: datetime) -> int:
    """One attempt at sending ``row``'s mail: 1 if it went out. A refusal is
    recorded on the row with when to try again (until REPEAT_AFTER has passed
    since the alert: by then the event is told afresh anyway)."""
    message = EmailMultiAlternatives(
        subject=row.subject, body=text, from_email=settings.DEFAULT_FROM_EMAIL,
        to=[row.recipient],
        connection=get_connection(timeout=settings.EMAIL_TIMEOUT or SMTP_TIMEOUT),
    )
    message.attach_alternative(html, "text/html")
    row.attempts += 1
    try:
        message.send()
    except Exception as exc:
        # smtplib's errors carry the server's reply, never our credentials.
        row.error = f"{type(exc).__name__}: {exc}"[:2000]
        step = RETRY_STEPS[min(row.attempts, len(RETRY_STEPS)) - 1]
        retry_at = timezone.now() + step
        row.next_attempt_at = retry_at if retry_at < row.created_at + REPEAT_AFTER else None
        logger.warning("alert %s to %s not sent: %s", row.kind, row.recipient, row.error)
        row.save(update_fields=["error", "attempts", "next_attempt_at"])
        return 0
    row.sent_at, row.next_attempt_at = timezone.now(), None
    row.save(update_fields=["sent_at", "attempts", "next_attempt_at"])
    return 1
