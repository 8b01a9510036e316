"""What the API shows and accepts of CA accounts, their deposit and orders. The
account key and the EAB HMAC never leave the portal here."""

from decimal import Decimal

from django.utils.translation import gettext_lazy as _
from rest_framework import serializers

from certificates.models import (
    CAAccount,
    DepositEntry,
    Order,
)

from .serializer_base import RefuseUnknownFieldsMixin


class CAAccountSerializer(serializers.ModelSerializer):
    balance = serializers.DecimalField(max_digits=14, decimal_places=2, read_only=True,
                                       source="ledger_balance")
    profiles = serializers.DictField(
        child=serializers.CharField(), read_only=True,
        help_text=_("The ACME profiles the CA's directory lists (name: description), read "
                    "when the account is tested."))

    class Meta:
        model = CAAccount
        fields = ["id", "organization", "name", "directory_url", "contact_email", "account_url",
                  "eab_kid", "price", "currency", "low_balance_threshold", "balance",
                  "created_at", "fallback_ca_account", "profiles", "profiles_checked_at",
                  "abandoned_at"]


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
