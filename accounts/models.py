"""People, the organisations they belong to (the tenants), and their roles."""

from django.conf import settings
from django.contrib.auth.models import AbstractUser
from django.db import models
from django.utils.translation import gettext_lazy as _


class User(AbstractUser):
    """A person who signs in. A custom model from the start, so it can grow."""

    language = models.CharField(
        _("preferred language"),
        max_length=8,
        choices=settings.LANGUAGES,
        blank=True,
        help_text=_("Pages and e-mails use this language; blank follows the browser."),
    )

    time_zone = models.CharField(
        _("time zone"), max_length=64, blank=True,
        help_text=_("Times in pages are shown in this zone; blank uses the organisation's."),
    )
    # The alert kinds this person does not want by e-mail (empty: all of them).
    # Kept as the ones turned off, so that a kind added later reaches everyone.
    muted_alerts = models.JSONField(_("alerts not mailed"), default=list, blank=True)

    def mail_language(self):
        return self.language or settings.LANGUAGE_CODE

    def wants_mail(self, kind: str) -> bool:
        return kind not in (self.muted_alerts or [])


class Organization(models.Model):
    """The tenant: everything an administrator manages belongs to one."""

    name = models.CharField(_("name"), max_length=200)
    slug = models.SlugField(_("short name"), max_length=60, unique=True)
    time_zone = models.CharField(
        _("time zone"),
        max_length=64,
        default=settings.TIME_ZONE,
        help_text=_("Times in pages and e-mails are shown in this zone."),
    )
    require_mfa = models.BooleanField(
        _("require two-factor authentication"),
        default=False,
        help_text=_("Every member must sign in with a second factor (an authenticator app "
                    "or a passkey). Owners and administrators always must."),
    )
    created_at = models.DateTimeField(_("created"), auto_now_add=True)

    tenant_path = "pk"

    class Meta:
        ordering = ["name"]
        verbose_name = _("organisation")
        verbose_name_plural = _("organisations")

    def __str__(self):
        return self.name


class Role(models.TextChoices):
    # Declared from least to most powerful: Role.rank() relies on this order.
    VIEWER = "viewer", _("Viewer")
    OPERATOR = "operator", _("Operator")
    ADMIN = "admin", _("Administrator")
    OWNER = "owner", _("Owner")

    @classmethod
    def at_least(cls, role):
        """The roles that include every right of `role`."""
        values = cls.values
        return values[values.index(role) :]


class Membership(models.Model):
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships"
    )
    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="memberships"
    )
    role = models.CharField(_("role"), max_length=16, choices=Role.choices, default=Role.VIEWER)
    created_at = models.DateTimeField(_("created"), auto_now_add=True)

    tenant_path = "organization"

    class Meta:
        verbose_name = _("membership")
        verbose_name_plural = _("memberships")
        constraints = [
            models.UniqueConstraint(fields=["user", "organization"], name="one_membership_per_org")
        ]

    def __str__(self):
        return f"{self.user} @ {self.organization} ({self.get_role_display()})"


class Invitation(models.Model):
    """An offer to join an organisation, mailed as a link that holds a token.

    Only the SHA-256 of the token is stored: the database alone cannot be used
    to accept an invitation. An invitation is open until it is accepted,
    revoked or expired; each of these ends it for good.
    """

    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="invitations"
    )
    email = models.EmailField(_("e-mail"))
    role = models.CharField(_("role"), max_length=16, choices=Role.choices, default=Role.VIEWER)
    language = models.CharField(_("language of the mail"), max_length=8,
                                choices=settings.LANGUAGES, blank=True)
    token_hash = models.CharField(_("SHA-256 of the token"), max_length=64, unique=True)
    invited_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True,
        related_name="+", verbose_name=_("invited by"),
    )
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    expires_at = models.DateTimeField(_("expires"))
    sent_at = models.DateTimeField(_("mailed"), null=True, blank=True)
    mail_error = models.TextField(_("mail error"), blank=True)
    accepted_at = models.DateTimeField(_("accepted"), null=True, blank=True)
    accepted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True,
        related_name="+", verbose_name=_("accepted by"),
    )
    revoked_at = models.DateTimeField(_("revoked"), null=True, blank=True)

    tenant_path = "organization"

    class Meta:
        ordering = ["-created_at", "-pk"]
        verbose_name = _("invitation")
        verbose_name_plural = _("invitations")

    def __str__(self):
        return f"{self.email} → {self.organization} ({self.get_role_display()})"

    @classmethod
    def open(cls, now):
        """The invitations that can still be accepted."""
        return cls.objects.filter(accepted_at__isnull=True, revoked_at__isnull=True,
                                  expires_at__gt=now)
