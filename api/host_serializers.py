"""What the API shows and accepts of target hosts (SSH or agent): the login key is
write-only, the host key is pinned only by fetching and confirming it."""

from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from accounts.models import Role
from certificates.models import (
    TargetHost,
)

from .serializer_base import OrganizationField, PortalModelSerializer, RefuseUnknownFieldsMixin


class AgentStateSerializer(serializers.Serializer):
    last_seen = serializers.DateTimeField(allow_null=True)
    version = serializers.CharField()
    mode = serializers.CharField()
    interval = serializers.IntegerField(allow_null=True)
    silent = serializers.BooleanField()
    credential_live = serializers.BooleanField()


class HostSerializer(PortalModelSerializer):
    write_role = Role.ADMIN
    clean_exclude = ()

    organization = OrganizationField(required=False, help_text=_(
        "Id of the organisation; may be left out if you belong to only one."))
    login_key = serializers.CharField(
        write_only=True, max_length=20000, trim_whitespace=False, required=False,
        help_text=_("OpenSSH private key without a passphrase; never shown again. Needed for "
                    "an SSH host."))
    host_key_confirmed = serializers.BooleanField(read_only=True)
    agent = serializers.SerializerMethodField(help_text=_(
        "An agent host's last check-in, agent version, mode, interval, whether it is silent "
        "and whether its credential is live; null for an SSH host."))

    class Meta:
        model = TargetHost
        fields = [
            "id", "organization", "name", "transport", "agent", "address", "ssh_port",
            "ssh_user", "login_key",
            "host_key", "host_key_fingerprint", "host_key_confirmed", "host_key_confirmed_at",
            "private_key_path", "certificate_path", "ca_bundle_path", "fullchain_path",
            "document_root", "backup_dir", "file_owner", "file_group", "key_mode", "cert_mode",
            "config_test_command", "reload_command", "tls_check_address", "tls_check_port",
            "tls_sni_name", "backups_to_keep", "created_at",
        ]
        # The host key is pinned only by fetching it and confirming its fingerprint.
        read_only_fields = ["host_key", "host_key_fingerprint", "host_key_confirmed_at",
                            "created_at"]
        # The name is unique within the organisation, which may be left out: the
        # model's own constraint check (in full_clean) judges it instead.
        validators = []

    def get_fields(self):
        fields = super().get_fields()
        if self.instance is not None and not isinstance(self.instance, list):
            fields["organization"].read_only = True
            fields["transport"].read_only = True  # a host does not change how it is reached
        return fields

    @extend_schema_field(AgentStateSerializer(allow_null=True))
    def get_agent(self, host):
        if not host.is_agent:
            return None
        state = getattr(host, "agent_state", None)
        # Prefetched for a list: filtering in Python keeps it one query for all hosts.
        live = any(c.revoked_at is None for c in host.agent_credentials.all())
        if state is None:
            return {"last_seen": None, "version": "", "mode": "", "interval": None,
                    "silent": False, "credential_live": live}
        return {"last_seen": state.last_seen, "version": state.version, "mode": state.mode,
                "interval": state.interval, "silent": state.silent_since() is not None,
                "credential_live": live}


class ConfirmHostKeySerializer(RefuseUnknownFieldsMixin, serializers.Serializer):
    # Long enough for the whole line of ssh-keygen -lf, whose comment is the host's name.
    fingerprint = serializers.CharField(max_length=500, help_text=_(
        "The SHA256 fingerprint you compared with the host's, e.g. SHA256:abc…, or the "
        "whole line ssh-keygen -lf printed."))


class HostKeySerializer(serializers.Serializer):
    host_key_fingerprint = serializers.CharField()
    host_key_confirmed = serializers.BooleanField()


class CheckSerializer(serializers.Serializer):
    name = serializers.CharField()
    label = serializers.CharField()
    ok = serializers.BooleanField()
    detail = serializers.CharField(allow_blank=True)


class ConnectionTestSerializer(serializers.Serializer):
    ok = serializers.BooleanField()
    checks = CheckSerializer(many=True)
