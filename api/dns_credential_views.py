"""DNS credentials in the API: listed to every member (operators choose them for
certificates), made, changed, deleted and tested by administrators. Apart from
views.py to keep that module within its size."""

from django.db.models import ProtectedError
from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import mixins, serializers
from rest_framework.decorators import action
from rest_framework.response import Response

from accounts.models import Role
from certificates.dns01 import checking
from certificates.models import AuditEvent, DNSCredential, DNSKind
from certificates.seams import dns_providers

from .errors import Conflict
from .serializer_base import OrganizationField, PortalModelSerializer
from .views import Audited, PortalViewSet

SECRET_HELP = _("Write-only. RFC 2136: {\"tsig_secret\": \"<base64>\"}; a provider: its secret "
                "options, such as {\"auth_token\": \"...\"}. A key left out or blank keeps the "
                "stored value; never shown again.")


class DNSCredentialSerializer(PortalModelSerializer):
    write_role = Role.ADMIN

    organization = OrganizationField(required=False, help_text=_(
        "Id of the organisation; may be left out if you belong to only one."))
    zones = serializers.ListField(child=serializers.CharField(max_length=253), max_length=50,
                                  help_text=_("The zones this credential may change."))
    options = serializers.DictField(
        child=serializers.CharField(max_length=2000, allow_blank=True), required=False,
        help_text=_("A provider's options that are not secrets (e.g. pdns_server)."))
    secrets = serializers.DictField(child=serializers.CharField(max_length=2000,
                                                                allow_blank=True),
                                    write_only=True, required=False, help_text=SECRET_HELP)
    has_secrets = serializers.SerializerMethodField()

    class Meta:
        model = DNSCredential
        fields = ["id", "organization", "name", "kind", "zones", "server", "port",
                  "tsig_key_name", "tsig_algorithm", "provider", "options", "secrets",
                  "has_secrets", "created_at", "updated_at"]
        read_only_fields = ["created_at", "updated_at"]

    def get_fields(self):
        fields = super().get_fields()
        if self.instance is not None and not isinstance(self.instance, list):
            fields["organization"].read_only = True
        return fields

    def get_has_secrets(self, obj) -> bool:
        return bool(obj.secrets)

    def prepare_instance(self, instance, attrs):
        given = {k: v for k, v in (attrs.pop("secrets", None) or {}).items() if v}
        allowed = allowed_secrets(instance)
        unknown = sorted(set(given) - allowed)
        if unknown:
            raise serializers.ValidationError({"secrets": [
                _("Unknown secrets %(names)s: this kind takes %(allowed)s.")
                % {"names": ", ".join(unknown),
                   "allowed": ", ".join(sorted(allowed)) or _("none")}]}, code="invalid")
        stored = self.instance.secret_values if self.instance is not None else {}
        instance.secrets = self.instance.secrets if self.instance is not None else ""
        if given:
            instance.secret_values = {**stored, **given}
            attrs["secrets"] = instance.secrets


def allowed_secrets(credential: DNSCredential) -> set[str]:
    if credential.kind == DNSKind.RFC2136:
        return {"tsig_secret"}
    if credential.kind == DNSKind.LEXICON:
        return {o.name for o in dns_providers.providers().get(credential.provider, ())}
    return set()  # acme-dns: its registrations are made by the portal


class OutcomeSerializer(serializers.Serializer):
    step = serializers.ChoiceField(choices=["write", "served", "delete"])
    ok = serializers.BooleanField()
    detail = serializers.CharField()


class DNSTestSerializer(serializers.Serializer):
    ok = serializers.BooleanField()
    steps = OutcomeSerializer(many=True)


DNS_CREDENTIAL_ROLES = {name: Role.ADMIN for name in (
    "create", "update", "partial_update", "destroy", "test")}


@extend_schema_view(list=extend_schema(summary=_("DNS credentials of your organisations")))
class DNSCredentialViewSet(Audited, mixins.ListModelMixin, mixins.RetrieveModelMixin,
                           mixins.CreateModelMixin, mixins.UpdateModelMixin,
                           mixins.DestroyModelMixin, PortalViewSet):
    model = DNSCredential
    serializer_class = DNSCredentialSerializer
    roles = DNS_CREDENTIAL_ROLES
    audited = (AuditEvent.Action.DNS_CREDENTIAL_CREATED, AuditEvent.Action.DNS_CREDENTIAL_CHANGED,
               AuditEvent.Action.DNS_CREDENTIAL_DELETED)

    def perform_destroy(self, instance):
        names = sorted(instance.certificates.values_list("common_name", flat=True))
        if names:
            raise Conflict(_("The credential is chosen by %(names)s: choose another for them "
                             "first.") % {"names": ", ".join(names)}, code="in_use")
        try:
            super().perform_destroy(instance)
        except ProtectedError as exc:  # pragma: no cover (no protecting relation today)
            raise Conflict(str(exc), code="in_use") from exc

    @extend_schema(request=None, responses={200: DNSTestSerializer},
                   summary=_("Test the DNS credential (administrators)"),
                   description=_("Writes a TXT record under each of its zones, waits until "
                                 "every authoritative server serves it, deletes it, and "
                                 "reports each step."))
    @action(detail=True, methods=["post"])
    def test(self, request, pk=None):
        outcomes = checking.test(self.get_object())
        return Response({"ok": all(o.ok for o in outcomes),
                         "steps": [{"step": o.step, "ok": o.ok, "detail": o.detail}
                                   for o in outcomes]})
