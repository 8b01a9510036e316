"""OpenAPI: the token authentication, and the error responses of every operation."""

from django.utils.translation import gettext_lazy as _
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.openapi import AutoSchema
from rest_framework import serializers


class ErrorItemSerializer(serializers.Serializer):
    field = serializers.CharField(
        allow_null=True, help_text=_("The field at fault (dotted for nested fields), or null."))
    message = serializers.CharField(help_text=_("What is wrong and what is allowed."))
    code = serializers.CharField(help_text=_("A stable code to match on."))


class ErrorSerializer(serializers.Serializer):
    errors = ErrorItemSerializer(many=True)


ERRORS = {
    "400": _("Bad input: each error names the field and what is allowed."),
    "401": _("No credentials, or a token that is invalid, revoked or expired."),
    "403": _("The token lacks the scope, or your role does not allow this."),
    "404": _("Not found, or not in one of your organisations."),
    "429": _("Too many requests for this token; retry after the Retry-After seconds."),
}


# A body the parsers cannot read as its Content-Type says (a malformed multipart).
WRITE_ERRORS = {
    "415": _("The request body is not of a media type this operation reads, or cannot be "
             "read as the one it says it is."),
}


class PortalAutoSchema(AutoSchema):
    """Every operation documents the shared error body for 400, 401, 403, 404, 429,
    and those that take a body for 415."""

    def _get_response_bodies(self, direction="response"):
        responses = super()._get_response_bodies(direction)
        errors = dict(ERRORS)
        if self.method in ("POST", "PUT", "PATCH"):
            errors.update(WRITE_ERRORS)
        for code, description in errors.items():
            if code not in responses:
                response = self._get_response_for_code(
                    ErrorSerializer, code, media_types=("application/json",), direction=direction)
                response["description"] = str(description)
                responses[code] = response
        return responses


class TokenAuthenticationScheme(OpenApiAuthenticationExtension):
    target_class = "api.authentication.TokenAuthentication"
    name = "tokenAuth"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "fjp_<prefix>_<secret>",
            "description": str(_("A personal API token, created at /api/tokens/.")),
        }


class AgentAuthenticationScheme(OpenApiAuthenticationExtension):
    target_class = "api.agent_views.AgentAuthentication"
    name = "agentAuth"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "fja_<prefix>_<secret>",
            "description": str(_("An agent host's credential, from its enrolment "
                                 "(docs/agent-protocol.md).")),
        }


class AgentErrorBodySerializer(serializers.Serializer):
    code = serializers.CharField(help_text=_("A stable code the agent acts on "
                                             "(docs/agent-protocol.md)."))
    message = serializers.CharField(help_text=_("Words for a person."))


class AgentErrorSerializer(serializers.Serializer):
    error = AgentErrorBodySerializer()


AGENT_ERRORS = {
    "400": _("Bad input (invalid): the message names the field and what is allowed."),
    "401": _("The credential is unknown (credential_unknown) or revoked (credential_revoked)."),
    "403": _("The enrolment code is unknown, used or expired."),
    "404": _("Not found."),
    "429": _("Too many requests from this host (rate_limited); retry after Retry-After."),
}


class AgentAutoSchema(AutoSchema):
    """The agent protocol's operations document its own error body."""

    def _get_response_bodies(self, direction="response"):
        responses = super()._get_response_bodies(direction)
        for code, description in AGENT_ERRORS.items():
            if code not in responses:
                response = self._get_response_for_code(
                    AgentErrorSerializer, code, media_types=("application/json",),
                    direction=direction)
                response["description"] = str(description)
                responses[code] = response
        return responses
