"""Query parameters of the list endpoints, validated like any input (400 naming
the parameter), and documented in the schema from these serializers."""

from django.db.models import Exists, OuterRef, Q
from django.utils.translation import gettext_lazy as _
from rest_framework import serializers

from certificates.models import Deployment, Order, RenewalRun

from .serializer_base import AllowedChoicesMixin


class Filters(AllowedChoicesMixin, serializers.Serializer):
    """Subclasses map each parameter to a queryset lookup in `lookups`, or to a
    function of the value that returns the condition."""

    lookups: dict = {}

    def apply(self, queryset):
        for name, value in self.validated_data.items():
            if name == "ordering":
                queryset = queryset.order_by(value, "pk")
            elif callable(lookup := self.lookups.get(name)):
                queryset = queryset.filter(lookup(value))
            elif lookup:
                queryset = queryset.filter(**{lookup: value})
        return queryset


def deployed_to(host_id):
    # Exists, not a join: one row per certificate however many deployments
    # match, so the list needs no DISTINCT (which compared every column of every row).
    return Exists(Deployment.objects.filter(certificate=OuterRef("pk"), host_id=host_id))


ID = {"min_value": 1, "max_value": 2**63 - 1, "required": False}


class CertificateFilters(Filters):
    lookups = {"organization": "organization_id", "ca_account": "ca_account_id",
               "host": deployed_to, "auto_renew": "auto_renew",
               "challenge": "challenge", "expires_before": "expires_at__lt",
               "expires_after": "expires_at__gte", "search": "common_name__icontains",
               "archived": lambda archived: Q(archived_at__isnull=not archived)}
    organization = serializers.IntegerField(**ID, help_text=_("Organisation id."))
    ca_account = serializers.IntegerField(**ID, help_text=_("CA account id."))
    host = serializers.IntegerField(**ID, help_text=_("Certificates deployed to this host id."))
    auto_renew = serializers.BooleanField(required=False, allow_null=True, default=None)
    challenge = serializers.ChoiceField(choices=["http-01", "dns-01"], required=False)
    expires_before = serializers.DateTimeField(required=False, help_text=_(
        "ISO 8601 date-time: certificates expiring before it."))
    expires_after = serializers.DateTimeField(required=False, help_text=_(
        "ISO 8601 date-time: certificates expiring at or after it."))
    search = serializers.CharField(required=False, max_length=253, help_text=_(
        "Part of the common name."))
    # Not allow_null: absent means false, so archived certificates are listed
    # only when asked for, as in the portal's list.
    archived = serializers.BooleanField(required=False, default=False, help_text=_(
        "true: only the archived certificates; left out or false: only those in service."))
    ordering = serializers.ChoiceField(
        required=False, choices=["expires_at", "-expires_at", "common_name", "-common_name",
                                 "created_at", "-created_at"])

    def validate(self, attrs):
        # BooleanField(allow_null) yields None when absent: no filter then.
        return {k: v for k, v in attrs.items() if v is not None}


class HostFilters(Filters):
    lookups = {"organization": "organization_id", "search": "name__icontains"}
    organization = serializers.IntegerField(**ID, help_text=_("Organisation id."))
    search = serializers.CharField(required=False, max_length=200, help_text=_(
        "Part of the host name."))


class DeploymentFilters(Filters):
    lookups = {"certificate": "certificate_id", "host": "host_id", "served": "served",
               "status": "last_status"}
    certificate = serializers.IntegerField(**ID)
    host = serializers.IntegerField(**ID)
    served = serializers.BooleanField(required=False, allow_null=True, default=None)
    status = serializers.ChoiceField(choices=Deployment.Status.choices, required=False)

    def validate(self, attrs):
        return {k: v for k, v in attrs.items() if v is not None}


class RunFilters(Filters):
    lookups = {"certificate": "certificate_id", "status": "status", "trigger": "trigger"}
    certificate = serializers.IntegerField(**ID)
    status = serializers.ChoiceField(choices=RenewalRun.Status.choices, required=False)
    trigger = serializers.ChoiceField(choices=RenewalRun.Trigger.choices, required=False)


class CAAccountFilters(Filters):
    lookups = {"organization": "organization_id"}
    organization = serializers.IntegerField(**ID)


class OrderFilters(Filters):
    lookups = {"organization": "organization_id", "ca_account": "ca_account_id",
               "certificate": "certificate_id", "status": "status", "product": "product"}
    organization = serializers.IntegerField(**ID)
    ca_account = serializers.IntegerField(**ID)
    certificate = serializers.IntegerField(**ID)
    status = serializers.ChoiceField(choices=Order.Status.choices, required=False)
    product = serializers.ChoiceField(choices=Order.Product.choices, required=False)


class VersionQuery(serializers.Serializer):
    version = serializers.IntegerField(**ID, help_text=_(
        "Id of one of the certificate's versions; the current one when left out."))
