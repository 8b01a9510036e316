"""Incidents: many certificates replaced against a deadline (a CA's mis-issuance,
a distrust), each certificate of the incident with what happened to it.

The incident's status changes only in certificates/incidents/lifecycle.py,
each change one guarded UPDATE:

    running ─pause─▶ paused ─resume─▶ running ─complete─▶ completed
"""

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from certificates.messages import Message

from .certificate import KeyType, RevocationReason


class Incident(models.Model):
    class Status(models.TextChoices):
        RUNNING = "running", _("Running")
        PAUSED = "paused", _("Paused")
        COMPLETED = "completed", _("Completed")

    OPEN = (Status.RUNNING, Status.PAUSED)

    organization = models.ForeignKey(
        "accounts.Organization", on_delete=models.CASCADE, related_name="incidents")
    name = models.CharField(_("name"), max_length=200)
    # The filter the certificates were chosen by, kept as it was given.
    ca_account = models.ForeignKey(
        "certificates.CAAccount", on_delete=models.SET_NULL, null=True, blank=True,
        related_name="+", verbose_name=_("CA account"))
    issuer_contains = models.CharField(_("issuer contains"), max_length=200, blank=True)
    issued_before = models.DateTimeField(_("issued before"), null=True, blank=True)
    key_type = models.CharField(_("key type"), max_length=10, blank=True,
                                choices=KeyType.choices)
    name_pattern = models.CharField(
        _("names matching"), max_length=253, blank=True,
        help_text=_("A pattern of the common name: * stands for any characters "
                    "(e.g. *.example.com)."))
    tag = models.CharField(_("tag"), max_length=50, blank=True)
    deadline = models.DateTimeField(_("deadline"))
    revoke_old = models.BooleanField(
        _("revoke the old versions"), default=False,
        help_text=_("Each old version is revoked once its replacement is served."))
    revocation_reason = models.PositiveSmallIntegerField(
        _("revocation reason"), choices=RevocationReason.choices,
        default=RevocationReason.SUPERSEDED)
    status = models.CharField(_("status"), max_length=10, choices=Status.choices,
                              default=Status.RUNNING)
    # The price of every replacement, held on the deposit when the incident started:
    # the sum, and by currency ({"JPY": "2200", "USD": "10.00"}), since CA accounts
    # of several currencies give a sum with none (empty on incidents from before).
    reserved = models.DecimalField(_("reserved"), max_digits=14, decimal_places=2, default=0)
    reserved_by_currency = models.JSONField(default=dict, blank=True, editable=False)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL,
                                   null=True, blank=True, related_name="+",
                                   verbose_name=_("started by"))
    created_at = models.DateTimeField(_("started"), default=timezone.now)
    finished_at = models.DateTimeField(_("finished"), null=True, blank=True)

    tenant_path = "organization"

    class Meta:
        ordering = ["-created_at", "-pk"]
        verbose_name = _("incident")
        verbose_name_plural = _("incidents")
        indexes = [models.Index(fields=["status"], condition=Q(status__in=["running", "paused"]),
                                name="incident_open_idx")]

    def __str__(self):
        return self.name

    @property
    def is_open(self) -> bool:
        return self.status in self.OPEN


class IncidentCertificate(models.Model):
    """One certificate of an incident: the version to replace, its replacement
    once served, the old version's revocation, and the failures on the way."""

    incident = models.ForeignKey(Incident, on_delete=models.CASCADE, related_name="items")
    certificate = models.ForeignKey("certificates.Certificate", on_delete=models.CASCADE,
                                    related_name="incident_items")
    old_version = models.ForeignKey(
        "certificates.CertificateVersion", on_delete=models.SET_NULL, null=True,
        related_name="+", verbose_name=_("old version"))
    new_version = models.ForeignKey(
        "certificates.CertificateVersion", on_delete=models.SET_NULL, null=True, blank=True,
        related_name="+", verbose_name=_("replacement"))
    failures = models.PositiveIntegerField(_("failures"), default=0)
    # As a run's error: the text (in English where it has a key) and the message.
    last_error = models.TextField(_("last error"), blank=True)
    last_error_key = models.CharField(_("last error's message key"), max_length=80, blank=True)
    last_error_params = models.JSONField(_("last error's parameters"), default=dict, blank=True)
    # The next try after a failure: the usual backoff, shortened to fit the deadline.
    next_try_at = models.DateTimeField(_("next try"), null=True, blank=True)
    # When every host of the certificate served the replacement.
    replaced_at = models.DateTimeField(_("replaced"), null=True, blank=True)
    revoked_at = models.DateTimeField(_("old version revoked"), null=True, blank=True)
    revoke_tried_at = models.DateTimeField(_("revocation last tried"), null=True, blank=True)
    # When the message that revokes it was last sent: the incident's pass sends
    # it again only once that message can be taken as lost (service._revoke_pending).
    revoke_sent_at = models.DateTimeField(null=True, blank=True, editable=False)

    tenant_path = "incident__organization"

    class Meta:
        ordering = ["pk"]
        verbose_name = _("certificate of an incident")
        verbose_name_plural = _("certificates of an incident")
        constraints = [models.UniqueConstraint(fields=["incident", "certificate"],
                                               name="one_item_per_incident_certificate")]
        indexes = [models.Index(fields=["incident", "replaced_at"], name="incident_item_idx")]

    def __str__(self):
        return f"{self.incident} {self.certificate_id}"

    @property
    def last_error_message(self) -> Message:
        return Message(self.last_error_key, self.last_error_params or {}, self.last_error)
