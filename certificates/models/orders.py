"""Orders: purchases of a certificate product against a CA account."""

import secrets

from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _


def new_order_code() -> str:
    # Readable in a phone call, unique enough to be the key people quote.
    return f"ORD-{timezone.now():%Y%m%d}-{secrets.token_hex(4).upper()}"


class Order(models.Model):
    class Product(models.TextChoices):
        SINGLE = "single", _("Single domain")
        MULTI = "multi", _("Multi-domain")
        WILDCARD = "wildcard", _("Wildcard")

    class Status(models.TextChoices):
        PENDING = "pending", _("Purchased, not yet issued")
        ISSUED = "issued", _("Issued")
        ACTIVE = "active", _("Installed and active")
        EXPIRED = "expired", _("Expired")
        CANCELLED = "cancelled", _("Cancelled")

    organization = models.ForeignKey(
        "accounts.Organization", on_delete=models.CASCADE, related_name="orders"
    )
    ca_account = models.ForeignKey(
        "certificates.CAAccount", on_delete=models.PROTECT, related_name="orders",
        verbose_name=_("CA account"),
    )
    certificate = models.ForeignKey(
        "certificates.Certificate", on_delete=models.SET_NULL, null=True, blank=True,
        related_name="orders", verbose_name=_("certificate"),
    )
    code = models.CharField(_("order code"), max_length=40, unique=True, default=new_order_code)
    product = models.CharField(_("product"), max_length=10, choices=Product.choices)
    price = models.DecimalField(_("price"), max_digits=12, decimal_places=2)
    status = models.CharField(
        _("status"), max_length=10, choices=Status.choices, default=Status.PENDING
    )
    purchased_at = models.DateTimeField(_("purchased"), default=timezone.now)
    # Validity starts when the certificate is issued and installed, not when bought.
    activated_at = models.DateTimeField(_("activated"), null=True, blank=True)

    tenant_path = "organization"

    class Meta:
        ordering = ["-purchased_at"]
        verbose_name = _("order")
        verbose_name_plural = _("orders")

    def __str__(self):
        return self.code
