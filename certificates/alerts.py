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
``unmanaged_expiring``
    ``inventory`` (a certificate managed elsewhere that no monitored endpoint
    serves); ``extra``: ``name``, ``days`` and ``where`` (where it was seen).
``endpoint_expiring``, ``endpoint_problem``, ``endpoint_changed``
    ``endpoint`` (a monitored endpoint, its served certificate managed
    elsewhere); ``extra``: ``name`` (the served certificate's common name),
    ``days`` (expiring), ``problems`` (sentences, in the reader's language:
    the problem dicts, rendered per mail) and ``fingerprint`` (changed).

Amounts are Decimals in ``ca_account.currency``; dates are shown in the
organisation's time zone.
"""

from __future__ import annotations

import logging
import re
from datetime import timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.core.mail import EmailMultiAlternatives, get_connection
from django.db import models
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

logger = logging.getLogger(__name__)

# Within this window the same event is not mailed again to the same person.
REPEAT_AFTER = timedelta(hours=24)
# A hung SMTP server must not hold a renewal worker forever (Django's default is
# no timeout at all); EMAIL_TIMEOUT, when set, wins.
SMTP_TIMEOUT = 30


def recipients_for(organization: Organization,
                   ca_account: CAAccount | None = None) -> list[tuple[str, str]]:
    """(address, language) of the owners and admins, then the CA account's contact.

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
    candidates = [(m.user.email, m.user.mail_language()) for m in memberships]
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
    if ca_account is None and certificate is not None:
        ca_account = certificate.ca_account
    about = certificate or ca_account or host or endpoint or inventory
    if about is None:  # a programming error
        raise TypeError("an alert is about a certificate, a CA account, a host or an endpoint")
    organization = about.organization
    context = _context(kind, organization, certificate, ca_account, run, extra or {})
    if host is not None:
        context.update(host=host, link=_absolute("certificates:host", host))
    if endpoint is not None:
        context.update(endpoint=endpoint, link=_absolute("certificates:endpoint", endpoint))
    if inventory is not None:
        context.update(inventory=inventory,
                       link=_absolute("certificates:inventory_certificate", inventory))

    earlier = Notification.objects.filter(
        kind=kind, certificate=certificate, ca_account=ca_account, host=host,
        endpoint=endpoint, inventory_certificate=inventory, event=event,
    )
    if not once:
        earlier = earlier.filter(created_at__gte=timezone.now() - REPEAT_AFTER)

    rows = []
    for address, language in recipients_for(organization, ca_account):
        if earlier.filter(recipient__iexact=address).exists():
            continue
        rows.append(_mail(kind, address, language, context, event=event))
    return rows


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


def _render(kind: str, language: str, context: dict[str, Any]) -> tuple[str, str, str]:
    with translation.override(language), timezone.override(context["organization"].time_zone):
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


def _mail(kind: str, address: str, language: str, context: dict[str, Any], *,
          event: str) -> Notification:
    row = Notification(
        organization=context["organization"], certificate=context["certificate"],
        host=context.get("host") if isinstance(context.get("host"), TargetHost) else None,
        endpoint=context.get("endpoint"), inventory_certificate=context.get("inventory"),
        ca_account=context["ca_account"], kind=kind, event=event, recipient=address,
        language=language,
    )
    try:
        row.subject, text, html = _render(kind, language, context)
    except Exception as exc:
        # A template that cannot render for this data is a bug, but the alert is
        # still recorded, with why it did not go out.
        logger.exception("alert %s for %s could not be rendered", kind, address)
        row.subject = str(Notification.Kind(kind).label)
        row.error = f"rendering failed: {type(exc).__name__}: {exc}"
        row.save()
        return row
    # The row exists before the mail leaves: a crash while sending leaves a trace.
    row.save()
    message = EmailMultiAlternatives(
        subject=row.subject, body=text, from_email=settings.DEFAULT_FROM_EMAIL, to=[address],
        connection=get_connection(timeout=settings.EMAIL_TIMEOUT or SMTP_TIMEOUT),
    )
    message.attach_alternative(html, "text/html")
    try:
        message.send()
    except Exception as exc:
        # smtplib's errors carry the server's reply, never our credentials.
        row.error = f"{type(exc).__name__}: {exc}"[:2000]
        logger.warning("alert %s to %s not sent: %s", kind, address, row.error)
        row.save(update_fields=["error"])
    else:
        row.sent_at = timezone.now()
        row.save(update_fields=["sent_at"])
    return row
