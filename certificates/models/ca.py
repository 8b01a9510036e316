"""CA accounts and their prepaid deposit."""

from decimal import Decimal

from django.conf import settings
from django.core.validators import MinValueValidator
from django.db import models
from django.db.models import Q, Sum
from django.utils.translation import gettext_lazy as _

from fujissl_portal.encryption import EncryptedTextField


class CAAccount(models.Model):
    """An ACME account at one CA, with its price per certificate and its deposit."""

    organization = models.ForeignKey(
        "accounts.Organization", on_delete=models.CASCADE, related_name="ca_accounts"
    )
    name = models.CharField(_("name"), max_length=200)
    directory_url = models.URLField(
        _("ACME directory URL"), max_length=500,
        help_text=_("For example https://acme.example.com/directory"),
    )
    contact_email = models.EmailField(_("contact e-mail"))
    account_key = EncryptedTextField(
        _("account key"), blank=True, help_text=_("Created on first use; stored encrypted.")
    )
    account_url = models.URLField(_("account URL"), max_length=500, blank=True)
    eab_kid = models.CharField(
        _("EAB key ID"), max_length=200, blank=True,
        help_text=_("External Account Binding, required by commercial CAs."),
    )
    eab_hmac_key = EncryptedTextField(_("EAB HMAC key"), blank=True)
    price = models.DecimalField(
        _("price per certificate"), max_digits=12, decimal_places=2, default=Decimal("0"),
        validators=[MinValueValidator(Decimal("0"), _("The price cannot be negative."))],
    )
    currency = models.CharField(_("currency"), max_length=3, default="JPY")
    low_balance_threshold = models.DecimalField(
        _("low-balance threshold"), max_digits=12, decimal_places=2, default=Decimal("0"),
        validators=[MinValueValidator(Decimal("0"), _("The threshold cannot be negative."))],
    )
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    # Where this account's certificates renew when it fails them for good, or
    # when an administrator moves them away from it (renewal/fallback.py). A
    # certificate may name its own fallback instead.
    fallback_ca_account = models.ForeignKey(
        "self", on_delete=models.SET_NULL, null=True, blank=True, related_name="+",
        verbose_name=_("fallback CA account"),
        help_text=_("Another CA account of the organisation that renews this account's "
                    "certificates when this CA fails permanently or is abandoned."),
    )
    # Set by the one action that moves every certificate away from this CA (a
    # distrusted CA): no certificate falls back to it afterwards.
    abandoned_at = models.DateTimeField(_("certificates moved away"), null=True, blank=True)
    # ACME profiles (draft-ietf-acme-profiles) the CA's directory lists in
    # meta.profiles, {name: description}: read when the account is saved or tested.
    profiles = models.JSONField(_("ACME profiles"), default=dict, blank=True)
    profiles_checked_at = models.DateTimeField(_("profiles read"), null=True, blank=True)
    # The names the CA recognises in CAA records (meta.caaIdentities), read with
    # the profiles: a certificate's names are checked against them when saved.
    caa_identities = models.JSONField(_("CAA identities"), default=list, blank=True)

    tenant_path = "organization"

    class Meta:
        ordering = ["name"]
        verbose_name = _("CA account")
        verbose_name_plural = _("CA accounts")

    # A stored secret is asked again when its endpoint changes (models/endpoints.py).
    secret_endpoints = {"eab_hmac_key": ("directory_url",)}

    def __str__(self):
        return self.name

    def clean(self):
        from django.core.exceptions import ValidationError

        # The account key and EAB secret travel to this URL: never in clear text.
        if self.directory_url and not self.directory_url.lower().startswith("https://"):
            raise ValidationError({"directory_url": _(
                "The ACME directory URL must start with https://.")})
        if self.fallback_ca_account_id is not None:
            if error := fallback_error(self, self.fallback_ca_account):
                raise ValidationError({"fallback_ca_account": error})

    def profile_names(self) -> list[str]:
        return sorted(self.profiles) if isinstance(self.profiles, dict) else []

    def balance(self) -> Decimal:
        """The balance is the sum of the ledger; it is never stored on its own."""
        total = self.ledger.aggregate(total=Sum("amount"))["total"]
        return total if total is not None else Decimal("0")

    def reserved(self) -> Decimal:
        """The prices held for renewals under way (see Reservation)."""
        total = self.reservations.filter(
            status=Reservation.Status.OPEN).aggregate(total=Sum("amount"))["total"]
        return total if total is not None else Decimal("0")

    def available(self) -> Decimal:
        """What one more renewal may spend: the balance less what is reserved."""
        return self.balance() - self.reserved()

    def is_priced(self) -> bool:
        # Free CAs (Let's Encrypt and the like) raise no deposit warnings.
        return self.price > 0


def fallback_error(account: CAAccount | None, fallback: CAAccount) -> str:
    """Why ``fallback`` cannot stand in for ``account`` (a CA account, or None for a
    certificate's own CA account checked elsewhere), or "" when it can."""
    if account is not None and fallback.pk == account.pk:
        return str(_("A CA account cannot be its own fallback."))
    if account is not None and fallback.organization_id != account.organization_id:
        return str(_("Choose a fallback CA account of the same organisation."))
    if fallback.abandoned_at is not None:
        return str(_("Certificates were moved away from %(name)s: it cannot be a fallback.")
                   % {"name": fallback.name})
    return ""


def ca_option_errors(certificate) -> dict[str, list[str]]:
    """A certificate's CA options (Certificate.clean): the fallback, another CA
    account of the organisation, not abandoned; the profile, one its CA
    account's directory lists. A CA account a person chose by hand clears the
    record of a move to a fallback."""
    if certificate.ca_switch_reason and certificate.pk and not type(certificate).objects.filter(
            pk=certificate.pk, ca_account_id=certificate.ca_account_id).exists():
        certificate.moved_from_ca_account, certificate.ca_switch_reason = None, ""
        certificate.ca_switched_at = None
    errors = {}
    account = certificate.ca_account
    fallback = certificate.fallback_ca_account if certificate.fallback_ca_account_id else None
    if fallback is not None:
        if fallback.organization_id != certificate.organization_id:
            errors["fallback_ca_account"] = [
                str(_("Choose a fallback CA account of the same organisation."))]
        elif message := fallback_error(account, fallback):
            errors["fallback_ca_account"] = [message]
    if certificate.profile and certificate.profile not in account.profile_names():
        errors["profile"] = [str(
            _("%(account)s's CA lists no profile “%(profile)s” (it lists: %(offered)s). "
              "Test the CA account to read its profiles again, or choose another.")
            % {"account": account.name, "profile": certificate.profile,
               "offered": ", ".join(account.profile_names()) or _("none")})]
    return errors


class DepositEntry(models.Model):
    """One line of a deposit ledger. Money moves once: `reference` is unique."""

    class Kind(models.TextChoices):
        TOP_UP = "topup", _("Top-up")
        CHARGE = "charge", _("Charge")
        REFUND = "refund", _("Refund")

    ca_account = models.ForeignKey(CAAccount, on_delete=models.PROTECT, related_name="ledger")
    kind = models.CharField(_("kind"), max_length=8, choices=Kind.choices)
    amount = models.DecimalField(
        _("amount"), max_digits=12, decimal_places=2,
        help_text=_("Signed: top-ups and refunds are positive, charges negative."),
    )
    # A retried task that tries to charge for the same issued version collides here.
    reference = models.CharField(_("reference"), max_length=200, unique=True)
    note = models.TextField(_("note"), blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True,
        related_name="+", verbose_name=_("by"),
    )
    created_at = models.DateTimeField(_("when"), auto_now_add=True)

    tenant_path = "ca_account__organization"

    class Meta:
        ordering = ["-created_at", "-pk"]
        verbose_name = _("deposit entry")
        verbose_name_plural = _("deposit ledger")
        constraints = [
            models.CheckConstraint(
                condition=(Q(kind="charge", amount__lt=0) | Q(~Q(kind="charge"), amount__gt=0)),
                name="deposit_amount_sign_matches_kind",
            )
        ]
        indexes = [
            # The ledger page and the balance sum read one account's entries.
            models.Index(fields=["ca_account", "created_at"], name="ledger_by_account_idx"),
        ]

    def __str__(self):
        return f"{self.get_kind_display()} {self.amount} ({self.reference})"


class Reservation(models.Model):
    """The price of one renewal run, held on a CA account from before its ACME
    order until the run ends: settled into the charge when a version is issued,
    released when nothing is.

    Not a ledger row: the ledger is money that moved, and its sum is the
    balance; a reservation is a hold on that money. It is written once and its
    status changes once, from open to settled or released, by a guarded UPDATE
    (`certificates.deposit`), never back and never deleted, so the history of
    holds stays as append-only as the ledger without a compensating row for
    every release.
    """

    class Status(models.TextChoices):
        OPEN = "open", _("Open")
        SETTLED = "settled", _("Settled")
        RELEASED = "released", _("Released")

    ca_account = models.ForeignKey(CAAccount, on_delete=models.PROTECT,
                                   related_name="reservations")
    # One per run: a retried task finds its run's reservation instead of holding twice.
    run = models.OneToOneField("certificates.RenewalRun", on_delete=models.CASCADE,
                               related_name="reservation")
    amount = models.DecimalField(
        _("amount"), max_digits=12, decimal_places=2,
        validators=[MinValueValidator(Decimal("0.01"))],
    )
    status = models.CharField(_("status"), max_length=8, choices=Status.choices,
                              default=Status.OPEN)
    created_at = models.DateTimeField(_("reserved"), auto_now_add=True)
    closed_at = models.DateTimeField(_("closed"), null=True, blank=True)

    tenant_path = "ca_account__organization"

    class Meta:
        ordering = ["-created_at", "-pk"]
        verbose_name = _("reservation")
        verbose_name_plural = _("reservations")
        constraints = [
            models.CheckConstraint(condition=Q(amount__gt=0), name="reservation_amount_positive"),
        ]
        indexes = [
            # The available balance sums one account's open reservations.
            models.Index(fields=["ca_account"], condition=Q(status="open"),
                         name="reservation_open_idx"),
        ]

    def __str__(self):
        return f"{self.get_status_display()} {self.amount} (run {self.run_id})"
