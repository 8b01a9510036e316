"""API tokens (stored hashed) and outbound webhooks with their deliveries."""

import hashlib
import hmac
import secrets
from datetime import timedelta
from urllib.parse import urlsplit

from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.functional import lazy
from django.utils.translation import gettext_lazy as _

from fujissl_portal import egress
from fujissl_portal.encryption import EncryptedTextField

TOKEN_MARK = "fjp"


def hash_secret(secret: str) -> str:
    # The secret is 256 random bits: a plain SHA-256 cannot be brute-forced, and
    # unlike a password hash it costs nothing on every request.
    return hashlib.sha256(secret.encode()).hexdigest()


class Scope(models.TextChoices):
    READ = "read", _("Read")
    WRITE = "write", _("Write")


class APIToken(models.Model):
    """A personal token: it acts with its user's role, within its scopes.

    Only the prefix (for the lookup) and the SHA-256 of the secret are stored;
    the whole token is shown once, when it is created.
    """

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens"
    )
    name = models.CharField(_("name"), max_length=100)
    prefix = models.CharField(_("prefix"), max_length=16, unique=True)
    secret_hash = models.CharField(_("SHA-256 of the secret"), max_length=64)
    scopes = models.JSONField(_("scopes"), default=list)
    expires_at = models.DateTimeField(_("expires"))
    last_used_at = models.DateTimeField(_("last used"), null=True, blank=True)
    revoked_at = models.DateTimeField(_("revoked"), null=True, blank=True)
    created_at = models.DateTimeField(_("created"), auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        verbose_name = _("API token")
        verbose_name_plural = _("API tokens")

    def __str__(self):
        return f"{self.name} ({TOKEN_MARK}_{self.prefix}_…)"

    @classmethod
    def issue(cls, *, user, name, scopes, expires_at) -> tuple["APIToken", str]:
        """A new token and its clear text, which is never stored and shown once."""
        prefix, secret = secrets.token_hex(6), secrets.token_urlsafe(32)
        token = cls.objects.create(user=user, name=name, prefix=prefix,
                                   secret_hash=hash_secret(secret), scopes=sorted(set(scopes)),
                                   expires_at=expires_at)
        return token, f"{TOKEN_MARK}_{prefix}_{secret}"

    @staticmethod
    def split(raw: str) -> tuple[str, str] | None:
        mark, _sep, rest = raw.partition("_")
        prefix, _sep, secret = rest.partition("_")
        if mark != TOKEN_MARK or not prefix or not secret:
            return None
        return prefix, secret

    def matches(self, secret: str) -> bool:
        return hmac.compare_digest(self.secret_hash, hash_secret(secret))

    def is_active(self, now=None) -> bool:
        now = now or timezone.now()
        return self.revoked_at is None and self.expires_at > now

    def allows(self, scope: str) -> bool:
        return scope in self.scopes

    def touch(self, now=None) -> None:
        """Records use, at most once a minute: not a write on every request."""
        now = now or timezone.now()
        if self.last_used_at is None or now - self.last_used_at > timedelta(minutes=1):
            APIToken.objects.filter(pk=self.pk).update(last_used_at=now)
            self.last_used_at = now


class Event(models.TextChoices):
    RENEWAL_SUCCEEDED = "renewal.succeeded", _("Renewal succeeded")
    RENEWAL_FAILED = "renewal.failed", _("Renewal failed")
    DEPLOYMENT_NOT_SERVED = "deployment.not_served", _("Deployment not served")
    DEPOSIT_LOW = "deposit.low", _("Deposit low")
    AGENT_SILENT = "agent.silent", _("Agent silent")
    ENDPOINT_EXPIRING = "endpoint.expiring", _("Monitored certificate expiring")
    ENDPOINT_PROBLEM = "endpoint.problem", _("Monitored endpoint does not verify")
    ENDPOINT_CHANGED = "endpoint.changed", _("Monitored certificate changed")
    INVENTORY_EXPIRING = "inventory.expiring", _("Unmanaged certificate expiring")


def _events_help_now() -> str:
    return _("Which events are sent: %(events)s") % {"events": ", ".join(Event.values)}


# Lazy as a whole: "%" on a lazy string translates it at import, in the
# default language, for everyone (and into the migration).
_events_help = lazy(_events_help_now, str)


class Webhook(models.Model):
    """An organisation's receiver of events; each body is signed with `secret`."""

    organization = models.ForeignKey(
        "accounts.Organization", on_delete=models.CASCADE, related_name="webhooks"
    )
    url = models.URLField(_("URL"), max_length=500)
    secret = EncryptedTextField(
        _("signing secret"), help_text=_("Bodies are signed with HMAC-SHA256 using this secret.")
    )
    events = models.JSONField(_("events"), default=list, help_text=_events_help())
    active = models.BooleanField(_("active"), default=True)
    created_at = models.DateTimeField(_("created"), auto_now_add=True)

    tenant_path = "organization"

    class Meta:
        ordering = ["organization", "url"]
        verbose_name = _("webhook")
        verbose_name_plural = _("webhooks")

    # Bodies signed with the secret go to the URL: a new URL needs the secret again
    # (certificates/models/endpoints.py).
    secret_endpoints = {"secret": ("url",)}

    def __str__(self):
        return self.url

    def clean(self):
        from django.core.exceptions import ValidationError

        errors = {}
        unknown = [e for e in self.events or [] if e not in Event.values]
        if unknown or not isinstance(self.events, list):
            errors["events"] = _("Choose events among: %(events)s.") % {
                "events": ", ".join(Event.values)}
        url_error = self._url_error()
        if url_error:
            errors["url"] = url_error
        if errors:
            raise ValidationError(errors)

    def _url_error(self):
        """Why the portal will not send to this URL, or None. A name that does not
        resolve yet passes: each delivery checks again."""
        try:
            parts = urlsplit(self.url or "")
            port = parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError:
            return None  # the URL field's own validation says what is wrong
        if not parts.hostname or parts.scheme not in ("http", "https"):
            return None
        if not egress.scheme_allowed(self.url):
            return _("Use an https:// URL: plain http is allowed only to hosts the portal's "
                     "operator allows.")
        try:
            egress.resolve(parts.hostname, port)
        except egress.Refused:
            return _("The address of this URL is not allowed by the portal's outbound "
                     "policy: use the receiver's public address.")
        except (OSError, UnicodeError):
            return None
        return None


class WebhookDelivery(models.Model):
    """One event sent (or still to send) to one webhook, with every attempt's outcome."""

    class Status(models.TextChoices):
        PENDING = "pending", _("Pending")
        SENDING = "sending", _("Sending")
        DELIVERED = "delivered", _("Delivered")
        FAILED = "failed", _("Failed")

    webhook = models.ForeignKey(Webhook, on_delete=models.CASCADE, related_name="deliveries")
    event = models.CharField(_("event"), max_length=40, choices=Event.choices)
    payload = models.JSONField(_("payload"))
    status = models.CharField(_("status"), max_length=10, choices=Status.choices,
                              default=Status.PENDING)
    status_code = models.PositiveSmallIntegerField(_("HTTP status"), null=True, blank=True)
    error = models.TextField(_("error"), blank=True)
    attempts = models.PositiveSmallIntegerField(_("attempts"), default=0)
    # Backoff lives here, not in Celery countdowns (DESIGN.md, house style 3).
    next_attempt_at = models.DateTimeField(_("next attempt"), null=True, blank=True)
    delivered_at = models.DateTimeField(_("delivered"), null=True, blank=True)
    created_at = models.DateTimeField(_("created"), default=timezone.now)

    tenant_path = "webhook__organization"

    class Meta:
        ordering = ["-created_at", "-pk"]
        verbose_name = _("webhook delivery")
        verbose_name_plural = _("webhook deliveries")
        indexes = [
            # The retry scan: pending deliveries whose next attempt has come.
            models.Index(fields=["next_attempt_at"], condition=models.Q(status="pending"),
                         name="webhook_delivery_due_idx"),
        ]

    def __str__(self):
        return f"{self.event} → {self.webhook} ({self.get_status_display()})"
