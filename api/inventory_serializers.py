"""Serializers of the inventory's API: unmanaged certificates, imports, the
export, monitored endpoints and their checks, discovery. Private keys are
accepted on import and never shown."""

import base64
import binascii

from django.utils.translation import gettext_lazy as _
from rest_framework import serializers

from accounts.models import Role
from api.message_fields import message_key, message_params, message_text
from certificates.inventory import verification
from certificates.inventory.parsing import MAX_FILE_BYTES
from certificates.models import (
    EndpointCheck,
    InventoryCertificate,
    MonitoredEndpoint,
    Source,
    TargetHost,
)
from certificates.models.inventory import place_label

from .filters import ID, Filters
from .serializer_base import OrganizationField, RefuseUnknownFieldsMixin, ScopedRelatedField


class InventoryCertificateSerializer(serializers.ModelSerializer):
    names = serializers.SerializerMethodField()
    has_private_key = serializers.SerializerMethodField()
    seen_at = serializers.SerializerMethodField()

    class Meta:
        model = InventoryCertificate
        fields = ["id", "organization", "source", "status", "common_name", "names", "issuer",
                  "serial", "not_before", "expires_at", "key_type", "key_size",
                  "signature_algorithm", "fingerprint_sha256", "has_private_key", "seen_at",
                  "adopted_as", "created_at"]
        read_only_fields = fields

    def get_has_private_key(self, row) -> bool:
        # Annotated by the viewset's queryset; a row from an import has its key.
        stored = getattr(row, "key_stored", None)
        return row.has_key if stored is None else stored

    def get_names(self, row) -> list[str]:
        return row.names()

    def get_seen_at(self, row) -> list[str]:
        return [place_label(place) for place in row.seen_at]


class ImportSerializer(RefuseUnknownFieldsMixin, serializers.Serializer):
    write_role = Role.OPERATOR

    organization = OrganizationField(required=False, help_text=_(
        "Id of the organisation; may be left out if you belong to only one."))
    pem = serializers.CharField(required=False, allow_blank=True, trim_whitespace=False,
                                max_length=MAX_FILE_BYTES, help_text=_(
                                    "PEM text: the certificate, its chain, and its private "
                                    "key if you have it; several certificates at once."))
    pkcs12 = serializers.CharField(required=False, allow_blank=True,
                                   max_length=MAX_FILE_BYTES * 2, help_text=_(
                                       "A PKCS#12 file (.p12, .pfx), base64-encoded."))
    password = serializers.CharField(required=False, allow_blank=True, write_only=True,
                                     trim_whitespace=False, max_length=1000, help_text=_(
                                         "For the PKCS#12 file or an encrypted key."))

    def validate(self, attrs):
        files = []
        if attrs.get("pem", "").strip():
            files.append(("pem", attrs["pem"].encode()))
        if attrs.get("pkcs12"):
            try:
                files.append(("pkcs12", base64.b64decode(attrs["pkcs12"], validate=True)))
            except (binascii.Error, ValueError) as exc:
                raise serializers.ValidationError({"pkcs12": [
                    _("Give the PKCS#12 file base64-encoded.")]}) from exc
        if not files:
            raise serializers.ValidationError({"pem": [
                _("Give PEM text or a PKCS#12 file.")]})
        organization = attrs.get("organization") or self._only_organization()
        return {"organization": organization, "files": files,
                "password": attrs.get("password", "")}

    def _only_organization(self):
        choices = list(self.fields["organization"].get_queryset()[:2])
        if len(choices) == 1:
            return choices[0]
        raise serializers.ValidationError({"organization": [
            _("Name the organisation (its id): you can do this in several, or in none.")]})


class ImportResultSerializer(serializers.Serializer):
    created = InventoryCertificateSerializer(many=True)
    updated = InventoryCertificateSerializer(many=True)
    managed = serializers.IntegerField(help_text=_(
        "Certificates in the files that the portal issued itself (left alone)."))


class ExportRowSerializer(serializers.Serializer):
    """One certificate of the whole inventory, managed or not."""

    organization = serializers.IntegerField()
    managed = serializers.BooleanField()
    source = serializers.ChoiceField(choices=Source.choices)
    common_name = serializers.CharField()
    names = serializers.ListField(child=serializers.CharField())
    issuer = serializers.CharField()
    serial = serializers.CharField()
    not_before = serializers.DateTimeField(allow_null=True)
    not_after = serializers.DateTimeField(allow_null=True)
    key_type = serializers.CharField()
    key_size = serializers.IntegerField()
    signature_algorithm = serializers.CharField()
    fingerprint_sha256 = serializers.CharField()
    deployed_or_served_at = serializers.ListField(child=serializers.CharField())
    last_check = serializers.DateTimeField(allow_null=True)


class InventoryFilters(Filters):
    lookups = {"organization": "organization_id", "source": "source", "status": "status",
               "expires_before": "expires_at__lt", "search": "common_name__icontains"}
    organization = serializers.IntegerField(**ID, help_text=_("Organisation id."))
    source = serializers.ChoiceField(choices=["imported", "discovered"], required=False)
    status = serializers.ChoiceField(choices=InventoryCertificate.Status.values,
                                     required=False)
    expires_before = serializers.DateTimeField(required=False)
    search = serializers.CharField(required=False, max_length=253)


class EndpointSerializer(RefuseUnknownFieldsMixin, serializers.ModelSerializer):
    write_role = Role.OPERATOR

    organization = OrganizationField(required=False, help_text=_(
        "Id of the organisation; may be left out if you belong to only one."))
    problems = serializers.SerializerMethodField()

    class Meta:
        model = MonitoredEndpoint
        fields = ["id", "organization", "address", "port", "sni_name", "protocol", "result",
                  "problems",
                  "served_fingerprint", "certificate", "managed_certificate",
                  "last_checked_at", "next_check_at", "enabled"]
        read_only_fields = ["result", "served_fingerprint", "certificate",
                            "managed_certificate", "last_checked_at", "next_check_at",
                            "enabled"]
        # Uniqueness is the service's question (monitoring.watch), with its message.
        validators: list = []

    def get_problems(self, endpoint) -> list[str]:
        return [verification.describe(p) for p in endpoint.problems]

    def validate(self, attrs):
        if "organization" not in attrs:
            attrs["organization"] = ImportSerializer._only_organization(self)
        return attrs


class EndpointCheckSerializer(serializers.ModelSerializer):
    problems = serializers.SerializerMethodField()
    error = message_text("error_message")
    error_key = message_key()
    error_params = message_params()

    class Meta:
        model = EndpointCheck
        fields = ["id", "checked_at", "result", "fingerprint_sha256", "changed", "problems",
                  "error", "error_key", "error_params"]
        read_only_fields = fields

    def get_problems(self, check) -> list[str]:
        return [verification.describe(p) for p in check.problems]


class DiscoverSerializer(RefuseUnknownFieldsMixin, serializers.Serializer):
    """A scan (``targets``, with ``ports`` and ``names``) or a reading of
    ``paths`` on an enrolled ``host``: one or the other."""
    write_role = Role.OPERATOR

    organization = OrganizationField(required=False)
    targets = serializers.CharField(required=False, max_length=4000, help_text=_(
        "Addresses, names and ranges (a.b.c.d/n, a.b.c.d-a.b.c.e), space-separated."))
    ports = serializers.CharField(required=False, allow_blank=True, max_length=200)
    names = serializers.ListField(child=serializers.CharField(max_length=253), required=False,
                                  max_length=100)
    host = ScopedRelatedField(TargetHost, required=False, help_text=_(
        "Id of a host enrolled over SSH whose files to read, instead of a scan."))
    paths = serializers.ListField(
        child=serializers.CharField(max_length=1024), required=False, max_length=100,
        help_text=_("With host: absolute paths of files, or folders read one level deep "
                    "(.pem, .crt, .cer and .key files)."))

    def validate(self, attrs):
        scan_fields = sorted({"targets", "ports", "names"} & attrs.keys())
        if "host" in attrs:
            if scan_fields:
                raise serializers.ValidationError({scan_fields[0]: [_(
                    "Give either targets to scan or a host's paths to read, not both.")]})
            # The paths themselves are the service's to judge (discovery.check_paths).
            return self._in_hosts_organization(attrs)
        if "paths" in attrs:
            raise serializers.ValidationError({"host": [_(
                "Name the host (its id) whose paths to read.")]}, code="required")
        if not attrs.get("targets", "").strip():
            raise serializers.ValidationError({"targets": [_(
                "Give addresses, names or ranges to scan, or a host and paths to read.")]},
                code="required")
        if "organization" not in attrs:
            attrs["organization"] = ImportSerializer._only_organization(self)
        return attrs

    def _in_hosts_organization(self, attrs):
        """The host's organisation is the discovery's; it must be one where the
        asker may start discoveries, and the one named, if one is."""
        host = attrs["host"]
        allowed = self.fields["organization"].get_queryset()
        if not allowed.filter(pk=host.organization_id).exists():
            raise serializers.ValidationError({"host": [_(
                "You may not start discoveries in this host's organisation.")]})
        named = attrs.get("organization")
        if named is not None and named.pk != host.organization_id:
            raise serializers.ValidationError({"host": [_(
                "This host belongs to another organisation than the one named.")]})
        attrs["organization"] = host.organization
        return attrs
