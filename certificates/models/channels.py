"""Notification channels: where an organisation's alerts go besides e-mail
(Slack, Teams, LINE, ntfy, PagerDuty... through apprise), each with the alert
kinds it takes and the language its readers read."""

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _

from fujissl_portal.encryption import EncryptedTextField


def default_language() -> str:
    # A function, so that the migration does not freeze one setting's value.
    return settings.LANGUAGE_CODE


class NotificationChannel(models.Model):
    organization = models.ForeignKey("accounts.Organization", on_delete=models.CASCADE,
                                     related_name="channels")
    name = models.CharField(_("name"), max_length=100)
    # An apprise URL (slack://…, msteams://…, ntfy://…, json://…): its tokens are
    # secrets, encrypted at rest and never shown back; ``shown`` is apprise's own
    # version with them masked.
    url = EncryptedTextField(_("apprise URL"), help_text=_(
        "The channel's address as apprise writes it, for example "
        "slack://TokenA/TokenB/TokenC/#channel or ntfys://ntfy.example.org/topic; never shown "
        "again after saving."))
    shown = models.CharField(_("address"), max_length=300, blank=True)
    kinds = models.JSONField(_("alerts sent"), default=list, blank=True)
    language = models.CharField(_("language"), max_length=8, choices=settings.LANGUAGES,
                                default=default_language)
    enabled = models.BooleanField(_("enabled"), default=True)
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    last_sent_at = models.DateTimeField(_("last sent"), null=True, blank=True)
    last_error = models.TextField(_("last error"), blank=True)

    tenant_path = "organization"

    class Meta:
        ordering = ["name"]
        verbose_name = _("notification channel")
        verbose_name_plural = _("notification channels")
        constraints = [models.UniqueConstraint(fields=["organization", "name"],
                                               name="channel_name_unique_in_org")]

    def __str__(self):
        return self.name
