"""Serializers of discoveries in the API: one discovery's state and progress,
and what it found so far."""

from django.utils.translation import gettext_lazy as _
from rest_framework import serializers

from certificates.inventory import discovery_runs
from certificates.models import Discovery

from .inventory_serializers import InventoryCertificateSerializer


class DiscoverySerializer(serializers.ModelSerializer):
    found = serializers.SerializerMethodField(help_text=_("Certificates found so far."))
    errors = serializers.SerializerMethodField()

    class Meta:
        model = Discovery
        fields = ["id", "organization", "kind", "status", "targets", "ports", "names", "host",
                  "paths", "checked", "total", "served", "managed", "found", "errors",
                  "created_at", "finished_at"]
        read_only_fields = fields
        extra_kwargs = {
            "checked": {"help_text": _("Connections tried (or files read) so far.")},
            "total": {"help_text": _("Connections planned so far: it grows once the first "
                                     "round shows which addresses answer TLS.")},
            "status": {"help_text": _("queued and running: poll this discovery again.")},
        }

    def get_found(self, run) -> int:
        counted = getattr(run, "found_count", None)
        return run.findings.count() if counted is None else counted

    def get_errors(self, run) -> list[str]:
        return [discovery_runs.describe_error(error) for error in run.errors]


class DiscoveryDetailSerializer(DiscoverySerializer):
    findings = serializers.SerializerMethodField()

    class Meta(DiscoverySerializer.Meta):
        fields = [*DiscoverySerializer.Meta.fields, "findings"]
        read_only_fields = fields

    def get_findings(self, run) -> list[dict]:
        rows = run.findings.defer("private_key", "chain_pem").order_by("expires_at", "pk")
        return InventoryCertificateSerializer(rows, many=True).data
