"""Certificates the portal did not issue: imported or discovered, and the TLS
endpoints watched for what they serve.

They are rows of their own rather than `Certificate`s with a flag: every query
of managed certificates (the renewal scan, the run lifecycle, deposits) stays
correct without a new condition, and an unmanaged certificate needs none of a
managed one's required fields (CA account, challenge). Adoption makes a
managed `Certificate` and points this row at it.
"""

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from certificates.messages import Message
from fujissl_portal.encryption import EncryptedTextField


class Source(models.TextChoices):
    """Where a certificate of the inventory comes from."""

    ISSUED = "issued", _("Issued here")
    IMPORTED = "imported", _("Imported")
    DISCOVERED = "discovered", _("Discovered")


class InventoryCertificate(models.Model):
    """One leaf certificate managed elsewhere, identified by its fingerprint."""

    class Status(models.TextChoices):
        # Found by a discovery scan: waits for a person to accept or dismiss it.
        FOUND = "found", _("Found, not reviewed")
        ACCEPTED = "accepted", _("In the inventory")
        # Kept, so that the next scan does not offer it again.
        DISMISSED = "dismissed", _("Dismissed")

    organization = models.ForeignKey(
        "accounts.Organization", on_delete=models.CASCADE, related_name="inventory",
    )
    source = models.CharField(
        _("source"), max_length=12, default=Source.IMPORTED,
        choices=[(Source.IMPORTED.value, Source.IMPORTED.label),
                 (Source.DISCOVERED.value, Source.DISCOVERED.label)],
    )
    status = models.CharField(_("status"), max_length=10, choices=Status.choices,
                              default=Status.ACCEPTED)
    common_name = models.CharField(_("common name"), max_length=253, blank=True)
    sans = models.JSONField(_("subject alternative names"), default=list, blank=True)
    issuer = models.CharField(_("issuer"), max_length=500)
    serial = models.CharField(_("serial number"), max_length=64)
    not_before = models.DateTimeField(_("valid from"))
    # Named as on Certificate, so that the lists and the timeline sort both alike.
    expires_at = models.DateTimeField(_("valid until"))
    key_type = models.CharField(_("key type"), max_length=20)
    key_size = models.PositiveIntegerField(_("key size"))
    signature_algorithm = models.CharField(_("signature algorithm"), max_length=40)
    fingerprint_sha256 = models.CharField(_("SHA-256 fingerprint"), max_length=64)
    chain_pem = models.TextField(_("certificate chain (PEM)"))
    private_key = EncryptedTextField(_("private key"), blank=True)
    # Where it was found, one dict each: {"file"}, {"address", "port", "sni"} or
    # {"host", "host_id", "path"}; adoption fills a host's paths from the last kind.
    seen_at = models.JSONField(_("seen at"), default=list, blank=True)
    adopted_as = models.ForeignKey(
        "certificates.Certificate", on_delete=models.SET_NULL, null=True, blank=True,
        related_name="adopted_from", verbose_name=_("adopted as"),
    )
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL,
                                   null=True, blank=True, related_name="+")
    created_at = models.DateTimeField(_("added"), default=timezone.now)

    tenant_path = "organization"

    class Meta:
        ordering = ["expires_at", "common_name"]
        verbose_name = _("unmanaged certificate")
        verbose_name_plural = _("unmanaged certificates")
        constraints = [
            # Shown once, however often it is imported or found.
            models.UniqueConstraint(fields=["organization", "fingerprint_sha256"],
                                    name="one_inventory_row_per_leaf"),
        ]
        indexes = [
            models.Index(fields=["organization", "expires_at"], name="inv_org_expiry_idx"),
        ]

    def __str__(self):
        return self.common_name or self.fingerprint_sha256[:16]

    @property
    def has_key(self) -> bool:
        return bool(self.private_key)

    def names(self) -> list[str]:
        return self.sans or ([self.common_name] if self.common_name else [])

    def where(self) -> str:
        return ", ".join(place_label(place) for place in self.seen_at)

    @staticmethod
    def unadopted() -> Q:
        """The inventory proper: accepted, and not adopted (an adopted row is
        history: the managed certificate stands for it)."""
        return Q(adopted_as__isnull=True, status="accepted")


def place_label(place) -> str:
    """One place a certificate was seen, as people write it."""
    if not isinstance(place, dict):
        return str(place)
    if "path" in place:
        return f"{place.get('host', '')}:{place['path']}"
    if "address" in place:
        sni = f" ({place['sni']})" if place.get("sni") else ""
        # A mail protocol is named, as in "smtp://192.0.2.1:587".
        scheme = f"{place['protocol']}://" if place.get("protocol", "tls") != "tls" else ""
        return f"{scheme}{place['address']}:{place.get('port', '')}{sni}"
    return str(place.get("file", ""))


class MonitoredEndpoint(models.Model):
    """A TLS endpoint whose served certificate is checked on a schedule."""

    class Protocol(models.TextChoices):
        # The values are certificates.seams.starttls's names of the protocols.
        TLS = "tls", _("TLS")
        SMTP = "smtp", _("SMTP with STARTTLS")
        IMAP = "imap", _("IMAP with STARTTLS")
        POP3 = "pop3", _("POP3 with STARTTLS")

    class Result(models.TextChoices):
        PENDING = "pending", _("Not checked yet")
        OK = "ok", _("Verified")
        PROBLEM = "problem", _("Does not verify")
        UNREACHABLE = "unreachable", _("Unreachable")

    organization = models.ForeignKey(
        "accounts.Organization", on_delete=models.CASCADE, related_name="endpoints",
    )
    address = models.CharField(_("address"), max_length=253)
    port = models.PositiveIntegerField(_("port"), default=443, validators=[
        MinValueValidator(1, _("Ports are whole numbers from 1 to 65535.")),
        MaxValueValidator(65535, _("Ports are whole numbers from 1 to 65535."))])
    sni_name = models.CharField(_("SNI name"), max_length=253, blank=True)
    # What is spoken before the TLS handshake (mail servers' STARTTLS).
    protocol = models.CharField(_("protocol"), max_length=4, choices=Protocol.choices,
                                default=Protocol.TLS)
    certificate = models.ForeignKey(
        InventoryCertificate, on_delete=models.SET_NULL, null=True, blank=True,
        related_name="endpoints", verbose_name=_("served certificate"),
    )
    # The managed certificate served here, when the leaf is one the portal issued.
    managed_certificate = models.ForeignKey(
        "certificates.Certificate", on_delete=models.SET_NULL, null=True, blank=True,
        related_name="endpoints", verbose_name=_("managed certificate"),
    )
    served_fingerprint = models.CharField(_("served fingerprint"), max_length=64, blank=True)
    result = models.CharField(_("result"), max_length=12, choices=Result.choices,
                              default=Result.PENDING)
    problems = models.JSONField(_("problems"), default=list, blank=True)
    last_checked_at = models.DateTimeField(_("last check"), null=True, blank=True)
    next_check_at = models.DateTimeField(_("next check"), default=timezone.now)
    enabled = models.BooleanField(_("checked on a schedule"), default=True)
    # Alerts already given (event keys such as "expiring:<fingerprint>"): each is
    # told once, by mail and webhook, decided under the row's lock.
    told = models.JSONField(_("alerts given"), default=list, blank=True)
    created_at = models.DateTimeField(_("added"), default=timezone.now)

    tenant_path = "organization"

    class Meta:
        ordering = ["address", "port", "sni_name"]
        verbose_name = _("monitored endpoint")
        verbose_name_plural = _("monitored endpoints")
        constraints = [
            models.UniqueConstraint(fields=["organization", "address", "port", "sni_name"],
                                    name="one_endpoint_per_address_port_name"),
        ]
        indexes = [
            # The beat scan: enabled endpoints whose next check has come.
            models.Index(fields=["next_check_at"], condition=Q(enabled=True),
                         name="endpoint_due_idx"),
        ]

    def __str__(self):
        name = f" ({self.sni_name})" if self.sni_name else ""
        return f"{self.address}:{self.port}{name}"

    @property
    def starttls(self) -> bool:
        return self.protocol != self.Protocol.TLS


class EndpointCheck(models.Model):
    """One check of an endpoint: what it served and whether it verified."""

    endpoint = models.ForeignKey(MonitoredEndpoint, on_delete=models.CASCADE,
                                 related_name="checks")
    checked_at = models.DateTimeField(_("checked"), default=timezone.now)
    result = models.CharField(_("result"), max_length=12,
                              choices=MonitoredEndpoint.Result.choices)
    fingerprint_sha256 = models.CharField(_("SHA-256 fingerprint"), max_length=64, blank=True)
    changed = models.BooleanField(_("certificate changed"), default=False)
    # Message keys with their parameters (DESIGN.md, house style 14).
    problems = models.JSONField(_("problems"), default=list, blank=True)
    # Why nothing was served: the text (in English where it has a key) and the message.
    error = models.TextField(_("error"), blank=True)
    error_key = models.CharField(_("error's message key"), max_length=80, blank=True)
    error_params = models.JSONField(_("error's parameters"), default=dict, blank=True)

    tenant_path = "endpoint__organization"

    class Meta:
        ordering = ["-checked_at", "-pk"]
        verbose_name = _("endpoint check")
        verbose_name_plural = _("endpoint checks")

    def __str__(self):
        return f"{self.endpoint_id} {self.checked_at:%Y-%m-%d %H:%M} {self.result}"

    @property
    def error_message(self) -> Message:
        return Message(self.error_key, self.error_params or {}, self.error)
