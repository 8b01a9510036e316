"""Invitations: how a person joins an organisation.

An administrator names an e-mail address and a role; the address receives a
link holding a random token. Whoever opens the link in that mailbox accepts:
signed in with an account of that address, or by creating an account. The
administrator learns nothing about whether the address already has an account
anywhere: the answer to an invitation is the same either way.
"""

import hashlib
import logging
import re
import secrets
from datetime import timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.mail import EmailMultiAlternatives, get_connection
from django.db import IntegrityError, transaction
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone, translation

from .models import Invitation, Membership

logger = logging.getLogger(__name__)

SMTP_TIMEOUT = 30


def _hash(token: str) -> str:
    # 256 random bits: a plain SHA-256 cannot be brute-forced (as for API tokens).
    return hashlib.sha256(token.encode()).hexdigest()


def find(token: str) -> Invitation | None:
    """The invitation of `token`, in any state, or None."""
    if not token or len(token) > 100:
        return None
    return (Invitation.objects.select_related("organization", "invited_by")
            .filter(token_hash=_hash(token)).first())


def state(invitation, now=None) -> str:
    """open, accepted, revoked or expired."""
    now = now or timezone.now()
    if invitation.accepted_at:
        return "accepted"
    if invitation.revoked_at:
        return "revoked"
    if invitation.expires_at <= now:
        return "expired"
    return "open"


def invite(*, organization, email, role, by, language) -> tuple[Invitation | None, str]:
    """A new open invitation and its token, or (None, "") when the address is
    a member already. Earlier open invitations of the address end: the newest
    link is the one that counts."""
    email = email.strip()
    if Membership.objects.filter(organization=organization, user__email__iexact=email,
                                 user__is_active=True).exists():
        return None, ""
    now = timezone.now()
    token = secrets.token_urlsafe(32)
    with transaction.atomic():
        Invitation.open(now).filter(organization=organization, email__iexact=email).update(
            revoked_at=now)
        invitation = Invitation.objects.create(
            organization=organization, email=email, role=role, language=language,
            token_hash=_hash(token), invited_by=by,
            expires_at=now + timedelta(days=settings.INVITATION_DAYS))
    return invitation, token


def revoke(invitation) -> bool:
    """Ends an open invitation; False if it had ended already."""
    return bool(Invitation.open(timezone.now()).filter(pk=invitation.pk).update(
        revoked_at=timezone.now()))


def accept_url(token: str) -> str:
    path = reverse("certificates:invitation_accept", args=[token])
    return settings.PORTAL_BASE_URL.rstrip("/") + path


def _language(invitation) -> str:
    """The recipient's own language if the address has an account that chose
    one; else the language the administrator chose for the mail."""
    user = (get_user_model().objects.filter(email__iexact=invitation.email, is_active=True)
            .exclude(language="").first())
    return (user.language if user else "") or invitation.language or settings.LANGUAGE_CODE


def send(invitation, token: str) -> bool:
    """Mails the link; the outcome is kept on the invitation. Call it after
    the commit: no transaction is held across SMTP."""
    context = {"invitation": invitation, "organization": invitation.organization,
               "inviter": invitation.invited_by, "link": accept_url(token)}
    with translation.override(_language(invitation)), \
            timezone.override(invitation.organization.time_zone):
        context["role"] = invitation.get_role_display()
        subject = " ".join(render_to_string("emails/invitation.subject.txt", context).split())
        text = render_to_string("emails/invitation.txt", context)
        html = render_to_string("emails/invitation.html", context)
    text = re.sub(r"\n\s*\n(\s*\n)+", "\n\n", text).strip() + "\n"
    message = EmailMultiAlternatives(
        subject=subject[:300], body=text, from_email=settings.DEFAULT_FROM_EMAIL,
        to=[invitation.email],
        connection=get_connection(timeout=settings.EMAIL_TIMEOUT or SMTP_TIMEOUT))
    message.attach_alternative(html, "text/html")
    try:
        message.send()
    except Exception as exc:
        # smtplib's errors carry the server's reply, never our credentials.
        error = f"{type(exc).__name__}: {exc}"[:2000]
        logger.warning("invitation %s not sent: %s", invitation.pk, error)
        Invitation.objects.filter(pk=invitation.pk).update(mail_error=error)
        return False
    Invitation.objects.filter(pk=invitation.pk).update(sent_at=timezone.now(), mail_error="")
    return True


def email_matches(invitation, user) -> bool:
    return bool(user.email) and user.email.strip().lower() == invitation.email.strip().lower()


class NotOpen(Exception):
    """The invitation was accepted, revoked or expired meanwhile."""


def accept(invitation, user) -> tuple[Membership, bool]:
    """Makes `user` a member with the invited role; (membership, created).

    A person who is a member already keeps their role: an invitation never
    demotes. One guarded UPDATE ends the invitation, so two clicks (or two
    people holding the link) cannot both use it.
    """
    now = timezone.now()
    with transaction.atomic():
        taken = Invitation.open(now).filter(pk=invitation.pk).update(
            accepted_at=now, accepted_by=user)
        if not taken:
            raise NotOpen
        try:
            with transaction.atomic():
                membership, created = Membership.objects.get_or_create(
                    user=user, organization=invitation.organization,
                    defaults={"role": invitation.role})
        except IntegrityError:  # a concurrent get_or_create for the same person
            membership, created = Membership.objects.get(
                user=user, organization=invitation.organization), False
    return membership, created

