"""What the API shows and accepts. Secrets (private keys, the SSH login key, TSIG
and EAB secrets) are write-only or absent: they never leave the portal here.

By subject: certificate_serializers, host_serializers, ca_serializers,
settings_serializers, inventory_serializers; their base is serializer_base."""

from django.utils.translation import gettext_lazy as _
from rest_framework import serializers

from api.message_fields import message_key, message_params, message_text
from certificates.models import (
    Deployment,
    RenewalRun,
    RenewalStep,
)

from .ca_serializers import CAAccountSerializer, TopUpSerializer
from .certificate_serializers import CertificateSerializer
from .host_serializers import ConfirmHostKeySerializer, HostSerializer
from .organization_serializers import MemberSerializer, OrganizationSerializer
from .serializer_base import RefuseUnknownFieldsMixin
from .settings_serializers import ChannelSerializer, InvitationSerializer, WebhookSerializer


class DeploymentSerializer(serializers.ModelSerializer):
    last_error = message_text("last_error_message")
    last_error_key = message_key()
    last_error_params = message_params()

    class Meta:
        model = Deployment
        fields = ["id", "certificate", "host", "last_version", "last_status", "last_error",
                  "last_error_key", "last_error_params", "served", "served_fingerprint",
                  "last_deployed_at", "last_checked_at"]


class StepSerializer(serializers.ModelSerializer):
    label = serializers.CharField(source="get_name_display", read_only=True, help_text=_(
        "The step's name in words, in the request's language (Accept-Language)."))
    detail = message_text("detail_message")
    detail_key = message_key()
    detail_params = message_params()

    class Meta:
        model = RenewalStep
        fields = ["id", "name", "label", "status", "host", "detail", "detail_key",
                  "detail_params", "at"]


class RunSerializer(serializers.ModelSerializer):
    is_open = serializers.BooleanField(read_only=True, help_text=_(
        "True while queued, running or deploying: poll the detail until it is false."))
    is_stalled = serializers.BooleanField(read_only=True, help_text=_(
        "True when the run's worker is gone and the run waits to be taken up again."))
    requested_by = serializers.SlugRelatedField(slug_field="username", read_only=True,
                                                allow_null=True)
    error = message_text("error_message")
    error_key = message_key()
    error_params = message_params()

    class Meta:
        model = RenewalRun
        fields = ["id", "certificate", "trigger", "intent", "hosts", "status", "is_open",
                  "is_stalled", "requested_by", "error", "error_key", "error_params",
                  "error_class", "failure_kind",
                  "problem", "retry_after", "version", "attempts",
                  "created_at", "started_at", "finished_at"]


class RunDetailSerializer(RunSerializer):
    steps = StepSerializer(many=True, read_only=True)

    class Meta(RunSerializer.Meta):
        fields = RunSerializer.Meta.fields + ["log", "steps"]


class DeployRequestSerializer(RefuseUnknownFieldsMixin, serializers.Serializer):
    hosts = serializers.ListField(
        child=serializers.IntegerField(min_value=1, max_value=2**63 - 1), required=False,
        allow_empty=False,
        max_length=500, help_text=_("Ids of some of the certificate's hosts; all when left out."))


class RenewRequestSerializer(RefuseUnknownFieldsMixin, serializers.Serializer):
    force = serializers.BooleanField(default=False, help_text=_(
        "Needed to renew a certificate before its renewal window (administrators only): "
        "it issues and charges again for a certificate that is still valid."))


# What reads a request body; the schema test checks that each refuses unknown keys.
WRITABLE_SERIALIZERS = (CertificateSerializer, HostSerializer, WebhookSerializer,
                        CAAccountSerializer, TopUpSerializer, DeployRequestSerializer,
                        ConfirmHostKeySerializer, RenewRequestSerializer, InvitationSerializer,
                        ChannelSerializer, OrganizationSerializer, MemberSerializer)
# The inventory's (api/inventory_serializers.py) are checked there: ImportSerializer,
# EndpointSerializer and DiscoverSerializer use RefuseUnknownFieldsMixin too.
