"""What the API shows and accepts of CA accounts, their deposit and orders. The
account key and the EAB HMAC never leave the portal here."""

from decimal import Decimal

from django.core.exceptions import ValidationError as DjangoValidationError
from django.utils.translation import gettext_lazy as _
from rest_framework import serializers

from accounts.models import Role
from certificates.formatting import check_minor_units
from certificates.models import (
    CAAccount,
    DepositEntry,
    Order,
)
from certificates.renewal import ca_check

from .serializer_base import (
    OrganizationField,
    PortalModelSerializer,
    RefuseUnknownFieldsMixin,
    ScopedRelatedField,
)


class CAAccountSerializer(PortalModelSerializer):
    """Saved only once the CA accepts it, as the page's form: its directory
    fetched and checked to be ACME, and an EAB key checked by registering."""

    write_role = Role.ADMIN
    # What the check learns from the CA: the registration and its profiles.
    filled_by_clean = ("account_key", "account_url", *ca_check.CHECKED_FIELDS)

    organization = OrganizationField(required=False, help_text=_(
        "Id of the organisation; may be left out if you belong to only one."))
    eab_hmac_key = serializers.CharField(
        write_only=True, required=False, max_length=500, help_text=_(
            "External Account Binding HMAC key the CA gave you; never shown again. Leave it "
            "out to keep the stored one (needed again when directory_url changes)."))
    fallback_ca_account = ScopedRelatedField(CAAccount, required=False, allow_null=True)
    # A string, not a URL: empty until the account is registered at its CA.
    account_url = serializers.CharField(read_only=True, help_text=_(
        "The account at the CA; empty until it is registered (with an EAB key, on save)."))
    caa_identities = serializers.ListField(child=serializers.CharField(), read_only=True,
                                           help_text=_(
        "The names the CA goes by in CAA records (its directory's caaIdentities), read "
        "when the account is saved or tested."))
    balance = serializers.DecimalField(max_digits=14, decimal_places=2, read_only=True,
                                       source="ledger_balance")
    profiles = serializers.DictField(
        child=serializers.CharField(), read_only=True,
        help_text=_("The ACME profiles the CA's directory lists (name: description), read "
                    "when the account is tested."))

    class Meta:
        model = CAAccount
        fields = ["id", "organization", "name", "directory_url", "contact_email", "account_url",
                  "eab_kid", "eab_hmac_key", "price", "currency", "low_balance_threshold",
                  "balance", "created_at", "fallback_ca_account", "profiles",
                  "profiles_checked_at", "caa_identities", "abandoned_at"]
        read_only_fields = ["created_at", "profiles_checked_at", "abandoned_at"]

    def get_fields(self):
        fields = super().get_fields()
        if self.instance is not None and not isinstance(self.instance, list):
            fields["organization"].read_only = True
        return fields

    def prepare_instance(self, instance, attrs):
        # As the top-up and the page's form: no fraction of a yen.
        errors = {}
        for name in ("price", "low_balance_threshold"):
            try:
                check_minor_units(getattr(instance, name), instance.currency or "", name)
            except DjangoValidationError as exc:
                errors[name] = exc.messages
        if errors:
            raise serializers.ValidationError(errors, code="minor_units")

    def check_with_peer(self, instance, attrs):
        # Only a change of what reaches the CA is checked: a new price needs no CA.
        stored = self.instance
        touched = [name for name in ca_check.CONNECTION_FIELDS if name in attrs and (
            stored is None or getattr(stored, name) != attrs[name])]
        if stored is not None and not touched:
            return
        if stored is not None and "directory_url" in touched:
            instance.account_url = ""  # the old CA's: the new one registers afresh
        problems = ca_check.check(instance)
        if problems:
            errors: dict[str, list[str]] = {}
            for problem in problems:
                errors.setdefault(problem.field, []).append(problem.message)
            raise serializers.ValidationError(errors, code="ca_refused")


class BalanceSerializer(serializers.Serializer):
    balance = serializers.DecimalField(max_digits=14, decimal_places=2)
    reserved = serializers.DecimalField(max_digits=14, decimal_places=2, help_text=_(
        "Held for renewals under way: charged if they issue, released if not."))
    available = serializers.DecimalField(max_digits=14, decimal_places=2, help_text=_(
        "The balance less what is reserved: what the next renewal may spend."))
    currency = serializers.CharField()
    price = serializers.DecimalField(max_digits=12, decimal_places=2)
    low_balance_threshold = serializers.DecimalField(max_digits=12, decimal_places=2)


class LedgerEntrySerializer(serializers.ModelSerializer):
    created_by = serializers.SlugRelatedField(slug_field="username", read_only=True,
                                                allow_null=True)

    class Meta:
        model = DepositEntry
        fields = ["id", "kind", "amount", "reference", "note", "created_by", "created_at"]


class HorizonSerializer(serializers.Serializer):
    days = serializers.IntegerField()
    renewals = serializers.IntegerField()
    cost = serializers.DecimalField(max_digits=14, decimal_places=2)


class ForecastSerializer(serializers.Serializer):
    balance = serializers.DecimalField(max_digits=14, decimal_places=2)
    reserved = serializers.DecimalField(max_digits=14, decimal_places=2)
    available = serializers.DecimalField(max_digits=14, decimal_places=2)
    price = serializers.DecimalField(max_digits=12, decimal_places=2)
    currency = serializers.CharField()
    horizons = HorizonSerializer(many=True)
    runs_out_on = serializers.DateField(allow_null=True, help_text=_(
        "The day of the first renewal the balance cannot pay, within 90 days."))
    is_low = serializers.BooleanField()


class TopUpSerializer(RefuseUnknownFieldsMixin, serializers.Serializer):
    amount = serializers.DecimalField(max_digits=12, decimal_places=2,
                                      min_value=Decimal("0.01"), max_value=Decimal("9999999999"))
    note = serializers.CharField(max_length=1000, required=False, allow_blank=True, default="")


class OrderSerializer(serializers.ModelSerializer):
    class Meta:
        model = Order
        fields = ["id", "organization", "ca_account", "certificate", "code", "product", "price",
                  "status", "purchased_at", "activated_at"]
