"""What the API shows and accepts of certificates and their issued versions."""

import datetime

from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from accounts.models import Role
from accounts.tenancy import scoped
from certificates.models import (
    CAAccount,
    CASwitch,
    Certificate,
    CertificateVersion,
    Deployment,
    DNSCredential,
    TargetHost,
)
from certificates.models.hosts import FILE_PATH_FIELDS

from .serializer_base import OrganizationField, PortalModelSerializer, ScopedRelatedField


class HostIdsField(serializers.ListField):
    """A certificate's hosts as ids, read from its (prefetched) deployments."""

    def get_attribute(self, instance):
        return sorted(d.host_id for d in instance.deployments.all())


class CredentialIdsField(serializers.ListField):
    """A certificate's DNS credentials as ids."""

    def get_attribute(self, instance):
        return sorted(c.pk for c in instance.dns_credentials.all())


class NamesListField(serializers.ListField):
    """A certificate's names as ordered: also for a certificate stored without
    its SANs, which is issued for its common name."""

    def get_attribute(self, instance):
        return instance.names()


class NameWarningSerializer(serializers.Serializer):
    code = serializers.ChoiceField(choices=["not_resolving", "caa_forbids", "caa_unknown_ca",
                                            "lookup_failed"])
    name = serializers.CharField()
    message = serializers.CharField(help_text=_("In the request's language."))


class CertificateSerializer(PortalModelSerializer):
    write_role = Role.OPERATOR
    many_to_many = ("hosts", "dns_credentials")
    filled_by_clean = ("sans",)

    organization = OrganizationField(required=False, help_text=_(
        "Id of the organisation; may be left out if you belong to only one."))
    ca_account = ScopedRelatedField(CAAccount, help_text=_(
        "The CA account renewals go through now: the fallback once a certificate moved "
        "there (see moved_from_ca_account and ca_switch_reason)."))
    fallback_ca_account = ScopedRelatedField(CAAccount, required=False, allow_null=True)
    profile = serializers.CharField(required=False, allow_blank=True, max_length=64,
                                    help_text=_("An ACME profile the CA account lists; "
                                                "empty for the CA's default."))
    ca_switch_reason = serializers.ChoiceField(
        choices=CASwitch.choices, allow_blank=True, read_only=True,
        help_text=_("Why the certificate renews through a fallback CA account; empty while "
                    "it renews through the CA account it was set up with."))
    hosts = HostIdsField(
        child=serializers.IntegerField(min_value=1), required=False, max_length=500,
        help_text=_("Ids of the target hosts the certificate is deployed to."))
    sans = NamesListField(
        child=serializers.CharField(max_length=253), required=False, max_length=100,
        help_text=_("Every name on the certificate; the common name is added first if missing."))
    dns_credentials = CredentialIdsField(
        # Ids as the database holds them (a 64-bit key): larger is bad input, not a 500.
        child=serializers.IntegerField(min_value=1, max_value=2**63 - 1), required=False,
        max_length=100,
        help_text=_("DNS-01: ids of the DNS credentials that write the names' TXT records."))
    days_left = serializers.SerializerMethodField()
    warnings = serializers.SerializerMethodField(help_text=_(
        "Only in the answer to a create, or to a change of the names, CA account or challenge: "
        "what DNS shows wrong with the names (a name that does not resolve; CAA records, RFC "
        "8659, that do not allow the CA account's CA). The certificate is saved all the same; "
        "fix DNS (or the CA account) before it renews."))
    current_version_revoked_at = serializers.SerializerMethodField(
        help_text=_("When the current version was revoked at its CA; null if it was not."))

    class Meta:
        model = Certificate
        fields = [
            "id", "organization", "ca_account", "common_name", "sans", "key_type", "challenge",
            "dns_credentials", "auto_renew", "separate_certificate", "tags", "hosts",
            "current_version", "expires_at", "days_left", "current_version_revoked_at",
            "renew_after",
            "next_attempt_at", "failure_count", "held_for_deposit", "created_at", "updated_at",
            "fallback_ca_account", "profile", "moved_from_ca_account", "ca_switch_reason",
            "ca_switched_at", "warnings", "archived_at",
        ]
        read_only_fields = [
            "current_version", "expires_at", "renew_after", "next_attempt_at", "failure_count",
            "held_for_deposit", "created_at", "updated_at", "moved_from_ca_account",
            "ca_switch_reason", "ca_switched_at", "archived_at",
        ]

    def get_fields(self):
        fields = super().get_fields()
        if self.instance is not None and not isinstance(self.instance, list):
            fields["organization"].read_only = True
        return fields

    @extend_schema_field(NameWarningSerializer(many=True))
    def get_warnings(self, obj):
        return [{"code": w.code, "name": w.name, "message": w.message}
                for w in getattr(obj, "name_warnings", ())]

    def get_days_left(self, obj) -> int | None:
        return obj.days_left()

    def get_current_version_revoked_at(self, obj) -> datetime.datetime | None:
        if hasattr(obj, "current_revoked_at"):  # annotated by the viewset's queryset
            return obj.current_revoked_at
        if obj.current_version_id is None:
            return None
        return CertificateVersion.objects.filter(pk=obj.current_version_id).values_list(
            "revoked_at", flat=True).first()

    def prepare_instance(self, instance, attrs):
        self._prepare_credentials(instance, attrs)
        self._prepare_hosts(instance, attrs)

    def _prepare_credentials(self, instance, attrs):
        ids = attrs.get("dns_credentials")
        if ids is None:
            return
        credentials = list(scoped(DNSCredential, self.context["request"].user)
                           .filter(pk__in=ids, organization=instance.organization))
        missing = sorted(set(ids) - {c.pk for c in credentials})
        if missing:
            raise serializers.ValidationError({"dns_credentials": [
                _("DNS credentials %(ids)s are not credentials of the certificate's "
                  "organisation.") % {"ids": ", ".join(map(str, missing))}]},
                code="does_not_exist")
        attrs["dns_credentials"] = sorted(c.pk for c in credentials)
        instance.chosen_dns_credentials = credentials

    def _prepare_hosts(self, instance, attrs):
        # The hosts are resolved before the model's clean(), which needs them for
        # HTTP-01; they are bound (Deployment rows) only once the certificate is saved.
        host_ids = attrs.get("hosts")
        if host_ids is None:
            return
        hosts = list(scoped(TargetHost, self.context["request"].user)
                     .filter(pk__in=host_ids, organization=instance.organization)
                     .only(*FILE_PATH_FIELDS, "name", "document_root"))
        found = {host.pk for host in hosts}
        missing = sorted(set(host_ids) - found)
        if missing:
            raise serializers.ValidationError({"hosts": [
                _("Hosts %(ids)s are not hosts of the certificate's organisation.")
                % {"ids": ", ".join(map(str, missing))}]}, code="does_not_exist")
        crowded = Deployment.crowded_hosts(getattr(self.instance, "pk", None), hosts)
        if crowded:
            raise serializers.ValidationError({"hosts": [
                Deployment.crowded_message(host) for host in crowded]}, code="invalid")
        attrs["hosts"] = sorted(found)
        instance.chosen_hosts = hosts

    def create(self, validated_data):
        host_ids = validated_data.pop("hosts", None)
        credential_ids = validated_data.pop("dns_credentials", None)
        certificate = Certificate.objects.create(**validated_data)
        self._bind_hosts(certificate, host_ids)
        if credential_ids is not None:
            certificate.dns_credentials.set(credential_ids)
        return certificate

    def update(self, instance, validated_data):
        host_ids = validated_data.pop("hosts", None)
        credential_ids = validated_data.pop("dns_credentials", None)
        instance = super().update(instance, validated_data)
        self._bind_hosts(instance, host_ids)
        if credential_ids is not None:
            instance.dns_credentials.set(credential_ids)
        return instance

    @staticmethod
    def _bind_hosts(certificate, host_ids):
        if host_ids is None:
            return
        certificate.deployments.exclude(host_id__in=host_ids).delete()
        for host_id in host_ids:
            Deployment.objects.get_or_create(certificate=certificate, host_id=host_id)


class VersionSerializer(serializers.ModelSerializer):
    # As openssl shows it, also for versions stored before it was stored so.
    serial = serializers.CharField(source="serial_hex", read_only=True)

    class Meta:
        model = CertificateVersion
        fields = ["id", "certificate", "serial", "not_before", "not_after",
                  "fingerprint_sha256", "issuer", "created_at", "revoked_at",
                  "revocation_reason"]
