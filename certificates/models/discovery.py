"""A discovery run: what a person asked to be scanned (addresses and ports, or
files on an enrolled host), done by a worker, its progress kept here so that
the page and the API can follow it from anywhere, after leaving the page too."""

from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _


class Discovery(models.Model):
    class Kind(models.TextChoices):
        SCAN = "scan", _("Scan of addresses and ports")
        FILES = "files", _("Files on a host")

    class Status(models.TextChoices):
        QUEUED = "queued", _("Waiting for a worker")
        RUNNING = "running", _("Running")
        DONE = "done", _("Done")
        FAILED = "failed", _("Failed")

    organization = models.ForeignKey(
        "accounts.Organization", on_delete=models.CASCADE, related_name="discoveries",
    )
    kind = models.CharField(_("kind"), max_length=5, choices=Kind.choices, default=Kind.SCAN)
    status = models.CharField(_("status"), max_length=7, choices=Status.choices,
                              default=Status.QUEUED)
    # What was asked, as given (checked before the row was made).
    targets = models.TextField(_("addresses, names or ranges"), blank=True)
    ports = models.CharField(_("ports"), max_length=200, blank=True)
    names = models.JSONField(_("more SNI names"), default=list, blank=True)
    host = models.ForeignKey("certificates.TargetHost", on_delete=models.SET_NULL, null=True,
                             blank=True, related_name="+", verbose_name=_("host"))
    paths = models.JSONField(_("paths"), default=list, blank=True)
    # Progress: connections (or files) tried of those planned so far; the total
    # grows once the first round shows which addresses answer TLS.
    checked = models.PositiveIntegerField(_("checked"), default=0)
    total = models.PositiveIntegerField(_("total"), default=0)
    served = models.PositiveIntegerField(_("served a certificate"), default=0)
    managed = models.PositiveIntegerField(_("issued here"), default=0)
    findings = models.ManyToManyField("certificates.InventoryCertificate", blank=True,
                                      related_name="discoveries",
                                      verbose_name=_("certificates found"))
    # Message keys with their parameters (house style 14), like endpoint problems.
    errors = models.JSONField(_("errors"), default=list, blank=True)
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL,
                                     null=True, blank=True, related_name="+")
    created_at = models.DateTimeField(_("started"), default=timezone.now)
    finished_at = models.DateTimeField(_("finished"), null=True, blank=True)
    # While open: when its message (queued) or its worker (running) is taken as
    # lost and the discovery is sent again (discovery_runs.requeue_lost).
    lease_until = models.DateTimeField(null=True, blank=True, editable=False)

    tenant_path = "organization"

    class Meta:
        ordering = ["-created_at", "-pk"]
        verbose_name = _("discovery")
        verbose_name_plural = _("discoveries")
        indexes = [models.Index(fields=["organization", "-created_at"],
                                name="discovery_org_time_idx")]

    def __str__(self):
        what = self.targets if self.kind == self.Kind.SCAN else ", ".join(self.paths)
        return what[:60] or str(self.pk)

    @property
    def is_open(self) -> bool:
        return self.status in (self.Status.QUEUED, self.Status.RUNNING)
