"""The audit log: who changed something that matters, when, from where.

Rows are append-only (DESIGN.md, 'Rules that protect people's data'): nothing
in the portal edits or deletes them, and the admin shows them read-only.
What happened is stored as data (an action and its parameters), so the log
reads in each reader's language.
"""

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _


def client_address(request):
    """The address of the person behind a request.

    Behind a reverse proxy REMOTE_ADDR is the proxy. Only when the operator
    names the header their proxy sets (AUDIT_TRUSTED_PROXY_HEADER, e.g.
    HTTP_X_FORWARDED_FOR) is it read, and then only the entry the trusted proxy
    appended (AUDIT_TRUSTED_PROXY_COUNT from the right): entries further left
    were written by the client and prove nothing.
    """
    header = getattr(settings, "AUDIT_TRUSTED_PROXY_HEADER", "")
    if header:
        hops = [hop.strip() for hop in request.META.get(header, "").split(",") if hop.strip()]
        count = getattr(settings, "AUDIT_TRUSTED_PROXY_COUNT", 1)
        if len(hops) >= count:
            return hops[-count]
    return request.META.get("REMOTE_ADDR") or None


class AuditEvent(models.Model):
    class Action(models.TextChoices):
        KEY_DOWNLOAD = "key_download", _("Private key downloaded")
        # People
        INVITATION_SENT = "invitation_sent", _("Invitation sent")
        INVITATION_ACCEPTED = "invitation_accepted", _("Invitation accepted")
        INVITATION_REVOKED = "invitation_revoked", _("Invitation revoked")
        ROLE_CHANGED = "role_changed", _("Role changed")
        MEMBER_REMOVED = "member_removed", _("Member removed")
        MFA_CHANGED = "mfa_changed", _("Sign-in factors changed")
        PROFILE_CHANGED = "profile_changed", _("Own settings changed")
        ORGANIZATION_CHANGED = "organization_changed", _("Organisation settings changed")
        # Hosts
        HOST_CREATED = "host_created", _("Host added")
        HOST_CHANGED = "host_changed", _("Host changed")
        HOST_DELETED = "host_deleted", _("Host deleted")
        HOST_KEY_CONFIRMED = "host_key_confirmed", _("Host key confirmed")
        AGENT_CODE_MADE = "agent_code_made", _("Agent enrolment code made")
        AGENT_REVOKED = "agent_revoked", _("Agent credential revoked")
        # CA accounts and money
        CA_ACCOUNT_CREATED = "ca_account_created", _("CA account added")
        CA_ACCOUNT_CHANGED = "ca_account_changed", _("CA account changed")
        CA_ACCOUNT_DELETED = "ca_account_deleted", _("CA account deleted")
        TOP_UP = "top_up", _("Deposit topped up")
        # DNS credentials
        DNS_CREDENTIAL_CREATED = "dns_credential_created", _("DNS credential added")
        DNS_CREDENTIAL_CHANGED = "dns_credential_changed", _("DNS credential changed")
        DNS_CREDENTIAL_DELETED = "dns_credential_deleted", _("DNS credential deleted")
        CA_MOVED_AWAY = "ca_moved_away", _("Certificates moved away from a CA")
        CA_FALLBACK_USED = "ca_fallback_used", _("Renewals moved to the fallback CA")
        # Certificates
        CERTIFICATE_CREATED = "certificate_created", _("Certificate added")
        CERTIFICATE_CHANGED = "certificate_changed", _("Certificate changed")
        CERTIFICATE_DELETED = "certificate_deleted", _("Certificate deleted")
        CERTIFICATE_ARCHIVED = "certificate_archived", _("Certificate archived")
        CERTIFICATE_RESTORED = "certificate_restored", _("Certificate restored from the archive")
        RENEWAL_FORCED = "renewal_forced", _("Renewal forced before its window")
        CERTIFICATES_IMPORTED = "certificates_imported", _("Certificates imported")
        CERTIFICATE_ADOPTED = "certificate_adopted", _("Certificate adopted")
        INVENTORY_DISMISSED = "inventory_dismissed", _("Unmanaged certificate removed")
        DISCOVERY_STARTED = "discovery_started", _("Discovery started")
        ENDPOINT_WATCHED = "endpoint_watched", _("Endpoint monitored")
        ENDPOINT_STOPPED = "endpoint_stopped", _("Endpoint no longer checked")
        CERTIFICATE_REVOKED = "certificate_revoked", _("Certificate version revoked")
        # Incidents
        INCIDENT_STARTED = "incident_started", _("Incident started")
        INCIDENT_PAUSED = "incident_paused", _("Incident paused")
        INCIDENT_RESUMED = "incident_resumed", _("Incident resumed")
        # The API
        TOKEN_CREATED = "token_created", _("API token created")
        TOKEN_REVOKED = "token_revoked", _("API token revoked")
        WEBHOOK_CREATED = "webhook_created", _("Webhook added")
        WEBHOOK_CHANGED = "webhook_changed", _("Webhook changed")
        WEBHOOK_DELETED = "webhook_deleted", _("Webhook deleted")
        CHANNEL_CREATED = "channel_created", _("Notification channel added")
        CHANNEL_CHANGED = "channel_changed", _("Notification channel changed")
        CHANNEL_DELETED = "channel_deleted", _("Notification channel deleted")

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
    # What the event is about, as it was named then ("web1", "FujiSSL", a user name).
    subject = models.CharField(_("subject"), max_length=253, blank=True)
    # Free text kept for events recorded before `params` existed.
    detail = models.TextField(_("detail"), blank=True)
    # The facts of the change (changed field names, old and new role, amount...),
    # never a secret: rendered in the reader's language when read.
    params = models.JSONField(_("details"), default=dict, blank=True)
    ip_address = models.GenericIPAddressField(_("IP address"), null=True, blank=True)
    user_agent = models.CharField(_("browser"), max_length=300, blank=True)
    created_at = models.DateTimeField(_("when"), auto_now_add=True, db_index=True)

    tenant_path = "organization"

    class Meta:
        ordering = ["-created_at", "-pk"]
        verbose_name = _("audit event")
        verbose_name_plural = _("audit log")
        indexes = [models.Index(fields=["organization", "-created_at"], name="audit_org_time")]

    def __str__(self):
        return f"{self.get_action_display()} {self.subject} ({self.user})"

    @classmethod
    def record(cls, request, *, action, organization=None, certificate=None, subject="",
               detail="", params=None, user=None):
        """Write one event. `request` may be None (a management command); then
        `user` says who, and no address is known."""
        if organization is None:
            organization = certificate.organization if certificate else request.organization
        if user is None and request is not None and request.user.is_authenticated:
            user = request.user
        return cls.objects.create(
            organization=organization, action=action, user=user,
            certificate=certificate, subject=str(subject or certificate or "")[:253],
            detail=detail, params=params or {},
            ip_address=client_address(request) if request is not None else None,
            user_agent=request.META.get("HTTP_USER_AGENT", "")[:300] if request is not None else "",
        )
