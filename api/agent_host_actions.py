"""The agent host's actions in the REST API (for people and their tools):
an enrolment code, and revoking the agent's credential. Apart from host_views.py to
keep that module within its size; the agent's own endpoints are agent_views.py."""

from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response

from certificates.hosts import agents
from certificates.models import AuditEvent


class EnrolmentCodeSerializer(serializers.Serializer):
    code = serializers.CharField(help_text=_("Good once; shown only in this answer."))
    expires_at = serializers.DateTimeField()
    command = serializers.CharField(help_text=_("What to run on the server."))


class RevokedSerializer(serializers.Serializer):
    revoked = serializers.IntegerField(help_text=_("How many live credentials were revoked."))


class AgentHostActions:
    """Mixed into the host viewset."""

    def _agent_host(self):
        host = self.get_object()  # type: ignore[attr-defined]
        if not host.is_agent:
            raise ValidationError({"transport": [_("This host is reached over SSH; it has no "
                                                   "agent.")]}, code="not_an_agent_host")
        return host

    @extend_schema(request=None, responses={201: EnrolmentCodeSerializer},
                   summary=_("Make an enrolment code for the host's agent (administrators)"),
                   description=_("A one-time code the agent exchanges for the host's "
                                 "credential; earlier unused codes stop working."))
    @action(detail=True, methods=["post"], url_path="enrolment-code")
    def enrolment_code(self, request, pk=None):
        host = self._agent_host()
        enrolment, code = agents.make_enrolment_code(host, by=request.user)
        AuditEvent.record(request, action=AuditEvent.Action.AGENT_CODE_MADE,
                          organization=host.organization, subject=host.name,
                          params={"expires_at": enrolment.expires_at.isoformat(), "via": "api"})
        url = request.build_absolute_uri("/").rstrip("/")
        return Response({"code": code, "expires_at": enrolment.expires_at,
                         "command": f"fujissl-agent enrol --url {url} --code {code}"},
                        status=201)

    @extend_schema(request=None, responses={200: RevokedSerializer},
                   summary=_("Revoke the agent's credential (administrators)"),
                   description=_("The agent's next request is refused with "
                                 "credential_revoked."))
    @action(detail=True, methods=["post"], url_path="revoke-agent")
    def revoke_agent(self, request, pk=None):
        host = self._agent_host()
        count = agents.revoke(host, by=request.user)
        if count:
            AuditEvent.record(request, action=AuditEvent.Action.AGENT_REVOKED,
                              organization=host.organization, subject=host.name,
                              params={"via": "api"})
        return Response({"revoked": count})
