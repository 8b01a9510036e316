"""Agent hosts: servers that accept no inbound login and ask the portal for work
(docs/agent-protocol.md). An administrator makes a one-time enrolment code; the
agent exchanges it for a credential of its own host; each check-in leaves the
agent's state here; HTTP-01 challenge files wait here until the agent wrote them.

Codes and tokens are stored as SHA-256 of 256 random bits, as API tokens are:
nothing stored here lets anyone act as an agent.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import timedelta

from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

CREDENTIAL_MARK = "fja"
# Letters that cannot be mistaken for one another when a code is read aloud or
# typed from a screen: no 0/O, 1/I/L.
CODE_ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"
CODE_GROUPS, CODE_GROUP_LENGTH = 4, 4


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def normalise_code(code: str) -> str:
    """Case, spaces and dashes as a person may type them do not matter."""
    return "".join(ch for ch in code.upper() if ch.isalnum())


class AgentEnrolment(models.Model):
    """A one-time code for enrolling the agent of one host; good once, until it expires."""

    host = models.ForeignKey("certificates.TargetHost", on_delete=models.CASCADE,
                             related_name="agent_enrolments")
    code_hash = models.CharField(max_length=64, unique=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL,
                                   null=True, blank=True, related_name="+")
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    expires_at = models.DateTimeField(_("expires"))
    used_at = models.DateTimeField(_("used"), null=True, blank=True)

    tenant_path = "host__organization"

    class Meta:
        verbose_name = _("agent enrolment code")
        verbose_name_plural = _("agent enrolment codes")

    def __str__(self):
        return f"{self.host} (enrolment code {self.created_at:%Y-%m-%d %H:%M})"

    @classmethod
    def issue(cls, host, *, by=None) -> tuple[AgentEnrolment, str]:
        """A new code and its clear text, shown once. Earlier unused codes of the
        host stop working: only the newest one shown is good."""
        raw = "".join(secrets.choice(CODE_ALPHABET)
                      for _i in range(CODE_GROUPS * CODE_GROUP_LENGTH))
        now = timezone.now()
        cls.objects.filter(host=host, used_at__isnull=True).update(expires_at=now)
        enrolment = cls.objects.create(
            host=host, code_hash=digest(raw), created_by=by,
            expires_at=now + timedelta(hours=settings.AGENT_ENROLMENT_HOURS))
        shown = "-".join(raw[i:i + CODE_GROUP_LENGTH]
                         for i in range(0, len(raw), CODE_GROUP_LENGTH))
        return enrolment, shown


class AgentCredential(models.Model):
    """The token an enrolled agent signs in with; it reads only its host's work."""

    host = models.ForeignKey("certificates.TargetHost", on_delete=models.CASCADE,
                             related_name="agent_credentials")
    prefix = models.CharField(max_length=16, unique=True)
    secret_hash = models.CharField(max_length=64)
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    revoked_at = models.DateTimeField(_("revoked"), null=True, blank=True)
    revoked_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL,
                                   null=True, blank=True, related_name="+")

    tenant_path = "host__organization"

    class Meta:
        ordering = ["-created_at", "-pk"]
        verbose_name = _("agent credential")
        verbose_name_plural = _("agent credentials")
        constraints = [
            # One live credential per host: enrolling again replaces it.
            models.UniqueConstraint(fields=["host"], condition=models.Q(revoked_at__isnull=True),
                                    name="one_live_agent_credential_per_host"),
        ]

    def __str__(self):
        return f"{self.host} ({CREDENTIAL_MARK}_{self.prefix}_…)"

    @classmethod
    def issue(cls, host) -> tuple[AgentCredential, str]:
        prefix, secret = secrets.token_hex(6), secrets.token_urlsafe(32)
        cls.objects.filter(host=host, revoked_at__isnull=True).update(revoked_at=timezone.now())
        credential = cls.objects.create(host=host, prefix=prefix, secret_hash=digest(secret))
        return credential, f"{CREDENTIAL_MARK}_{prefix}_{secret}"

    @staticmethod
    def split(raw: str) -> tuple[str, str] | None:
        mark, _sep, rest = raw.partition("_")
        prefix, _sep, secret = rest.partition("_")
        if mark != CREDENTIAL_MARK or not prefix or not secret:
            return None
        return prefix, secret

    def matches(self, secret: str) -> bool:
        return hmac.compare_digest(self.secret_hash, digest(secret))


class AgentState(models.Model):
    """What the agent of a host said at its last check-in."""

    class Mode(models.TextChoices):
        RUN = "run", _("one check-in per run (cron or timer)")
        SERVE = "serve", _("service with long polling")

    host = models.OneToOneField("certificates.TargetHost", on_delete=models.CASCADE,
                                related_name="agent_state", primary_key=True)
    last_seen = models.DateTimeField(_("last check-in"), null=True, blank=True)
    version = models.CharField(_("agent version"), max_length=40, blank=True)
    mode = models.CharField(_("mode"), max_length=8, choices=Mode.choices, blank=True)
    interval = models.PositiveIntegerField(_("check-in interval (seconds)"), default=300)
    # Per certificate name: document_root, key_on_host, installed_fingerprint.
    certificates = models.JSONField(_("reported certificates"), default=dict, blank=True)
    # When the "agent silent" alert went for the current silence; cleared at
    # the next check-in, so that each silence is told once.
    silence_alerted_at = models.DateTimeField(null=True, blank=True)

    tenant_path = "host__organization"

    class Meta:
        verbose_name = _("agent state")
        verbose_name_plural = _("agent states")

    def __str__(self):
        return f"{self.host} (agent {self.version or '?'})"

    def silent_since(self, now=None):
        """The moment the agent became overdue (None: it is not)."""
        if self.last_seen is None:
            return None
        now = now or timezone.now()
        overdue = self.last_seen + timedelta(
            seconds=self.interval * settings.AGENT_SILENT_INTERVALS)
        return overdue if overdue <= now else None

    def wait_budget(self, now=None) -> float:
        """How long a run may wait for this agent to act on new work: seconds
        with a live long poll, one interval and a margin with cron."""
        now = now or timezone.now()
        if (self.mode == self.Mode.SERVE and self.last_seen is not None
                and now - self.last_seen < timedelta(seconds=2 * settings.AGENT_POLL_WAIT + 5)):
            return 2 * settings.AGENT_POLL_WAIT + 10
        return min(self.interval + 60, settings.AGENT_WAIT_MAX_SECONDS)


class AgentChallenge(models.Model):
    """An HTTP-01 challenge file the agent of a host is to write, then remove."""

    host = models.ForeignKey("certificates.TargetHost", on_delete=models.CASCADE,
                             related_name="+")
    run = models.ForeignKey("certificates.RenewalRun", on_delete=models.SET_NULL, null=True,
                            blank=True, related_name="+")
    certificate_name = models.CharField(max_length=253)
    path = models.CharField(max_length=300)  # .well-known/acme-challenge/<token>
    content = models.TextField()
    created_at = models.DateTimeField(default=timezone.now)
    written_at = models.DateTimeField(null=True, blank=True)
    remove_requested_at = models.DateTimeField(null=True, blank=True)
    removed_at = models.DateTimeField(null=True, blank=True)
    error = models.TextField(blank=True)

    tenant_path = "host__organization"

    class Meta:
        verbose_name = _("agent challenge file")
        verbose_name_plural = _("agent challenge files")
        indexes = [
            models.Index(fields=["host"], name="agent_challenge_open_idx",
                         condition=models.Q(removed_at__isnull=True)),
        ]

    def __str__(self):
        return f"{self.host}: {self.path}"
