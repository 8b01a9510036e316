"""The target hosts' endpoints: CRUD, pinning and confirming the host key, the
connection test; the agent's actions are in agent_host_actions."""

from django.core.exceptions import ValidationError as DjangoValidationError
from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import mixins
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response

from accounts.models import Role
from certificates.hosts import enrolment
from certificates.models import (
    AuditEvent,
    TargetHost,
)
from certificates.seams import ssh

from . import filters
from .agent_host_actions import AgentHostActions
from .errors import BadGateway
from .host_serializers import (
    ConfirmHostKeySerializer,
    ConnectionTestSerializer,
    HostKeySerializer,
    HostSerializer,
)
from .schema import ErrorSerializer
from .views import Audited, PortalViewSet

HOST_ROLES = {name: Role.ADMIN for name in (
    "create", "update", "partial_update", "destroy", "fetch_host_key", "confirm_host_key",
    "test_connection", "enrolment_code", "revoke_agent")}


@extend_schema_view(list=extend_schema(parameters=[filters.HostFilters]))
class HostViewSet(Audited, AgentHostActions, mixins.ListModelMixin, mixins.RetrieveModelMixin,
                  mixins.CreateModelMixin, mixins.UpdateModelMixin, mixins.DestroyModelMixin,
                  PortalViewSet):
    model = TargetHost
    serializer_class = HostSerializer
    filter_class = filters.HostFilters
    roles = HOST_ROLES
    audited = (AuditEvent.Action.HOST_CREATED, AuditEvent.Action.HOST_CHANGED,
               AuditEvent.Action.HOST_DELETED)

    def base_queryset(self):
        return TargetHost.objects.select_related("agent_state").prefetch_related(
            "agent_credentials")

    @extend_schema(request=None, responses={200: HostKeySerializer, 502: OpenApiResponse(
                       ErrorSerializer, description=_("The host could not be reached."))},
                   summary=_("Fetch and pin the host key, unconfirmed"),
                   description=_("Connects to the host, stores the key it presents and "
                                 "returns its fingerprint; confirm it with confirm-host-key."))
    @action(detail=True, methods=["post"], url_path="fetch-host-key")
    def fetch_host_key(self, request, pk=None):
        host = self.get_object()
        try:
            enrolment.fetch_and_pin_host_key(host_id=host.pk, by=request.user)
        except ssh.SSHError as exc:
            raise BadGateway(str(exc)) from exc
        host.refresh_from_db()
        return Response({"host_key_fingerprint": host.host_key_fingerprint,
                         "host_key_confirmed": host.host_key_confirmed})

    @extend_schema(request=ConfirmHostKeySerializer, responses={200: HostKeySerializer},
                   summary=_("Confirm the pinned host key"),
                   description=_("Confirms the pinned key if the fingerprint you compared "
                                 "with the host's is the stored one."))
    @action(detail=True, methods=["post"], url_path="confirm-host-key")
    def confirm_host_key(self, request, pk=None):
        host = self.get_object()
        body = ConfirmHostKeySerializer(data=request.data)
        body.is_valid(raise_exception=True)
        try:
            fingerprint = enrolment.confirm_host_key(
                host_id=host.pk, by=request.user, fingerprint=body.validated_data["fingerprint"])
        except DjangoValidationError as exc:
            raise ValidationError({"fingerprint": exc.messages},
                                  code="fingerprint_mismatch") from exc
        AuditEvent.record(request, action=AuditEvent.Action.HOST_KEY_CONFIRMED,
                          organization=host.organization, subject=host.name,
                          params={"fingerprint": fingerprint, "via": "api"})
        host.refresh_from_db()
        return Response({"host_key_fingerprint": host.host_key_fingerprint,
                         "host_key_confirmed": host.host_key_confirmed})

    @extend_schema(request=None, responses={200: ConnectionTestSerializer},
                   summary=_("Test the connection"),
                   description=_("Logs in with the pinned key, checks each folder and runs "
                                 "the config test and reload commands; each check reported."))
    @action(detail=True, methods=["post"], url_path="test-connection")
    def test_connection(self, request, pk=None):
        host = self.get_object()
        checks = enrolment.test_connection(host_id=host.pk)
        return Response({"ok": all(c.ok for c in checks),
                         "checks": [{"name": c.name, "label": str(c.label), "ok": c.ok,
                                     "detail": str(c.detail)} for c in checks]})
