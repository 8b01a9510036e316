"""The audit log: who did something sensitive, when, from where.

So far one action is audited: downloading a certificate's private key, which
only administrators may do (DESIGN.md, 'Rules that protect people's data').
"""

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _


class AuditEvent(models.Model):
    class Action(models.TextChoices):
        KEY_DOWNLOAD = "key_download", _("Private key downloaded")

    organization = models.ForeignKey(
        "accounts.Organization", on_delete=models.CASCADE, related_name="audit_events"
    )
    action = models.CharField(_("action"), max_length=32, choices=Action.choices)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True,
        related_name="+", verbose_name=_("by"),
    )
    # Kept when the certificate goes: the log outlives what it speaks of.
    certificate = models.ForeignKey(
        "certificates.Certificate", on_delete=models.SET_NULL, null=True, blank=True,
        related_name="audit_events", verbose_name=_("certificate"),
    )
    subject = models.CharField(_("subject"), max_length=253, blank=True)
    detail = models.TextField(_("detail"), blank=True)
    ip_address = models.GenericIPAddressField(_("IP address"), null=True, blank=True)
    user_agent = models.CharField(_("browser"), max_length=300, blank=True)
    created_at = models.DateTimeField(_("when"), auto_now_add=True, db_index=True)

    tenant_path = "organization"

    class Meta:
        ordering = ["-created_at", "-pk"]
        verbose_name = _("audit event")
        verbose_name_plural = _("audit log")

    def __str__(self):
        return f"{self.get_action_display()} {self.subject} ({self.user})"

    @classmethod
    def record(cls, request, *, action, certificate=None, detail=""):
        organization = certificate.organization if certificate else request.organization
        return cls.objects.create(
            organization=organization, action=action, user=request.user,
            certificate=certificate, subject=str(certificate or ""), detail=detail,
            ip_address=request.META.get("REMOTE_ADDR") or None,
            user_agent=request.META.get("HTTP_USER_AGENT", "")[:300],
        )
