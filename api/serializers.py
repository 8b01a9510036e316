"""What the API shows and accepts. Secrets (private keys, the SSH login key, TSIG
and EAB secrets) are write-only or absent: they never leave the portal here."""

import datetime
from copy import copy
from decimal import Decimal

from django.core.exceptions import ValidationError as DjangoValidationError
from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers
from rest_framework.serializers import as_serializer_error

from accounts.models import Role
from accounts.tenancy import has_role, organizations_of, scoped
from api.message_fields import message_key, message_params, message_text
from certificates.models import (
    CAAccount,
    CASwitch,
    Certificate,
    CertificateVersion,
    Deployment,
    DepositEntry,
    DNSCredential,
    Order,
    RenewalRun,
    RenewalStep,
    TargetHost,
)
from certificates.models.endpoints import stale_secret_errors
from certificates.models.hosts import FILE_PATH_FIELDS

from .models import Event, Webhook, WebhookDelivery

INVALID_CHOICE = _("“{input}” is not allowed; choose one of: %(choices)s.")


class ScopedRelatedField(serializers.PrimaryKeyRelatedField):
    """An id among the objects of the asker's organisations: any other id is
    "does not exist", exactly as if it did not."""

    def __init__(self, model, **kwargs):
        self.model = model
        super().__init__(queryset=model._default_manager.none(), **kwargs)

    def get_queryset(self):
        request = self.context.get("request")
        return scoped(self.model, getattr(request, "user", None))


class OrganizationField(serializers.PrimaryKeyRelatedField):
    """One of the organisations in which the asker holds the serializer's write role."""

    def __init__(self, **kwargs):
        from accounts.models import Organization

        super().__init__(queryset=Organization.objects.none(), **kwargs)

    def get_queryset(self):
        request = self.context.get("request")
        role = getattr(self.parent, "write_role", Role.ADMIN)
        return organizations_of(getattr(request, "user", None), at_least=role)


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


class AllowedChoicesMixin:
    """A refused choice says which values are allowed."""

    def get_fields(self):
        fields = super().get_fields()
        for field in fields.values():
            if isinstance(field, serializers.ChoiceField) and not field.read_only:
                choices = ", ".join(str(c) for c in field.choices)
                field.error_messages["invalid_choice"] = str(INVALID_CHOICE) % {
                    "choices": choices}
        return fields


class RefuseUnknownFieldsMixin:
    """A key that is not a writable field is refused, naming it: silently
    ignored, a misspelt "chalenge" made a certificate with the default challenge.

    Every serializer that reads a request body uses it: WRITABLE_SERIALIZERS.
    """

    def to_internal_value(self, data):
        if isinstance(data, dict):
            errors = {}
            for key in data:
                if key == "csrfmiddlewaretoken":  # the browsable API's HTML forms
                    continue
                field = self.fields.get(key)
                if field is None:
                    errors[key] = [serializers.ErrorDetail(_("Unknown field."),
                                                           code="unknown_field")]
                elif field.read_only:
                    errors[key] = [serializers.ErrorDetail(_("This field is read-only."),
                                                           code="read_only")]
            if errors:
                raise serializers.ValidationError(errors)
        return super().to_internal_value(data)


class PortalModelSerializer(RefuseUnknownFieldsMixin, AllowedChoicesMixin,
                            serializers.ModelSerializer):
    """The model's own clean() decides what is valid, and its normalised values
    (A-labels, ordered SANs) are what is saved."""

    write_role = Role.ADMIN
    clean_exclude = ()

    def validate(self, attrs):
        attrs = super().validate(attrs)
        if self.instance is None and "organization" in self.fields:
            attrs.setdefault("organization", self._only_organization())
        instance = copy(self.instance) if self.instance is not None else self.Meta.model()
        plain = {k: v for k, v in attrs.items() if k not in self.many_to_many}
        for name, value in plain.items():
            setattr(instance, name, value)
        self.prepare_instance(instance, attrs)
        try:
            instance.full_clean(exclude=list(self.clean_exclude))
        except DjangoValidationError as exc:
            raise serializers.ValidationError(as_serializer_error(exc)) from exc
        stale = stale_secret_errors(instance, given={k for k, v in attrs.items() if v})
        if stale:
            raise serializers.ValidationError({k: [v] for k, v in stale.items()},
                                              code="secret_required")
        kept = {*plain, *self.filled_by_clean}
        return {**attrs, **{name: getattr(instance, name) for name in kept}}

    many_to_many = ()
    # Fields the model's clean() fills in or derives from others: saved also when
    # the request leaves them out.
    filled_by_clean = ()

    def prepare_instance(self, instance, attrs):
        """Sets on `instance` what its clean() reads besides its own fields; may
        rewrite `attrs` in place."""

    def _only_organization(self):
        choices = list(self.fields["organization"].get_queryset()[:2])
        if len(choices) == 1:
            return choices[0]
        raise serializers.ValidationError({"organization": [
            _("Name the organisation (its id): you can do this in several, or in none.")]},
            code="required")


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
            "ca_switched_at",
        ]
        read_only_fields = [
            "current_version", "expires_at", "renew_after", "next_attempt_at", "failure_count",
            "held_for_deposit", "created_at", "updated_at", "moved_from_ca_account",
            "ca_switch_reason", "ca_switched_at",
        ]

    def get_fields(self):
        fields = super().get_fields()
        if self.instance is not None and not isinstance(self.instance, list):
            fields["organization"].read_only = True
        return fields

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


class DeployRequestSerializer(RefuseUnknownFieldsMixin, serializers.Serializer):
    hosts = serializers.ListField(
        child=serializers.IntegerField(min_value=1, max_value=2**63 - 1), required=False,
        allow_empty=False,
        max_length=500, help_text=_("Ids of some of the certificate's hosts; all when left out."))


class RenewRequestSerializer(RefuseUnknownFieldsMixin, serializers.Serializer):
    force = serializers.BooleanField(default=False, help_text=_(
        "Needed to renew a certificate before its renewal window (administrators only): "
        "it issues and charges again for a certificate that is still valid."))


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


class WebhookSerializer(PortalModelSerializer):
    write_role = Role.ADMIN

    organization = OrganizationField(required=False, help_text=_(
        "Id of the organisation; may be left out if you belong to only one."))
    secret = serializers.CharField(
        write_only=True, min_length=16, max_length=200, help_text=_(
            "At least 16 characters; bodies are signed with HMAC-SHA256 under it. "
            "Never shown again."))
    events = serializers.ListField(
        child=serializers.ChoiceField(choices=Event.choices), allow_empty=False,
        max_length=len(Event.values))

    class Meta:
        model = Webhook
        fields = ["id", "organization", "url", "secret", "events", "active", "created_at"]
        read_only_fields = ["created_at"]

    def get_fields(self):
        fields = super().get_fields()
        if self.instance is not None and not isinstance(self.instance, list):
            fields["organization"].read_only = True
            fields["secret"].required = False
        return fields

    def validate_events(self, value):
        return sorted(set(value))


class WebhookDeliverySerializer(serializers.ModelSerializer):
    class Meta:
        model = WebhookDelivery
        fields = ["id", "event", "payload", "status", "status_code", "error", "attempts",
                  "next_attempt_at", "delivered_at", "created_at"]


class InvitationSerializer(PortalModelSerializer):
    """An open invitation; the token is never shown, only mailed."""

    write_role = Role.ADMIN

    organization = OrganizationField(required=False, help_text=_(
        "Id of the organisation; may be left out if you belong to only one."))
    invited_by = serializers.SlugRelatedField(slug_field="username", read_only=True)

    class Meta:
        from accounts.models import Invitation

        model = Invitation
        fields = ["id", "organization", "email", "role", "language", "invited_by",
                  "created_at", "expires_at"]
        read_only_fields = ["created_at", "expires_at"]

    def validate(self, attrs):
        # Only the fields the person gives: the token and expiry are the service's.
        organization = attrs.get("organization") or self._only_organization()
        role = attrs.setdefault("role", Role.VIEWER)
        if role == Role.OWNER and not has_role(self.context["request"].user,
                                                        organization, Role.OWNER):
            raise serializers.ValidationError({"role": [
                _("Only owners invite owners.")]}, code="invalid_choice")
        return {**attrs, "organization": organization}


class InvitationSentSerializer(serializers.Serializer):
    detail = serializers.CharField()


# What reads a request body; the schema test checks that each refuses unknown keys.
WRITABLE_SERIALIZERS = (CertificateSerializer, HostSerializer, WebhookSerializer,
                        TopUpSerializer, DeployRequestSerializer, ConfirmHostKeySerializer,
                        RenewRequestSerializer, InvitationSerializer)
# The inventory's (api/inventory_serializers.py) are checked there: ImportSerializer,
# EndpointSerializer and DiscoverSerializer use RefuseUnknownFieldsMixin too.
