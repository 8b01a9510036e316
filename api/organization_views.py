"""Organisations and their members in the API, as on the members page: everyone
sees their organisations and who is in them; administrators change the
organisation's name and time zone, members' roles, and take people out (people
come in through /api/v1/invitations/). Every change is audited; the last owner
stays."""

from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import mixins
from rest_framework.exceptions import PermissionDenied

from accounts import members
from accounts.models import Membership, Organization, Role
from accounts.tenancy import organizations_of, scoped
from certificates.auditing import changed, snapshot
from certificates.models import AuditEvent

from .errors import Conflict
from .organization_serializers import MemberSerializer, OrganizationSerializer
from .schema import ErrorSerializer
from .views import PortalViewSet

ADMIN_CHANGES = {name: Role.ADMIN for name in ("update", "partial_update", "destroy")}
LAST_OWNER = OpenApiResponse(ErrorSerializer, description=_(
    "The change would leave the organisation without an owner."))


@extend_schema_view(list=extend_schema(summary=_("Your organisations")),
                    partial_update=extend_schema(summary=_(
                        "Change the organisation's name, time zone or two-factor rule "
                        "(administrators)")))
class OrganizationViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin,
                          mixins.UpdateModelMixin, PortalViewSet):
    model = Organization
    serializer_class = OrganizationSerializer
    roles = ADMIN_CHANGES

    def get_queryset(self):
        return organizations_of(self.request.user)

    def perform_update(self, serializer):
        before = snapshot(serializer.instance)
        organization = serializer.save()
        fields = changed(organization, before)["fields"]
        if fields:
            AuditEvent.record(self.request, action=AuditEvent.Action.ORGANIZATION_CHANGED,
                              organization=organization, subject=organization.name,
                              params={"fields": fields, "via": "api"})


@extend_schema_view(
    list=extend_schema(summary=_("Members of your organisations")),
    update=extend_schema(responses={200: MemberSerializer, 409: LAST_OWNER}),
    partial_update=extend_schema(summary=_("Change a member's role (administrators)"),
                                 responses={200: MemberSerializer, 409: LAST_OWNER}),
    destroy=extend_schema(summary=_("Take a person out of the organisation (administrators)"),
                          responses={204: None, 409: LAST_OWNER}),
)
class MemberViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.UpdateModelMixin,
                    mixins.DestroyModelMixin, PortalViewSet):
    model = Membership
    serializer_class = MemberSerializer
    roles = ADMIN_CHANGES

    def get_queryset(self):
        return scoped(Membership, self.request.user).select_related("user", "organization")

    @staticmethod
    def _refused(refusal):
        if refusal.code == "last_owner":
            return Conflict(refusal.message, code="last_owner")
        return PermissionDenied(refusal.message)

    def perform_update(self, serializer):
        membership = serializer.instance
        role = serializer.validated_data.get("role", membership.role)  # a PATCH may leave it out
        if role == membership.role:
            return
        try:
            before = members.change_role(membership=membership, role=role,
                                         by=self.request.user)
        except members.Refused as refusal:
            raise self._refused(refusal) from refusal
        AuditEvent.record(self.request, action=AuditEvent.Action.ROLE_CHANGED,
                          organization=membership.organization,
                          subject=membership.user.get_username(),
                          params={"from_role": before, "to_role": role, "via": "api"})

    def perform_destroy(self, instance):
        try:
            members.remove(membership=instance, by=self.request.user)
        except members.Refused as refusal:
            raise self._refused(refusal) from refusal
        AuditEvent.record(self.request, action=AuditEvent.Action.MEMBER_REMOVED,
                          organization=instance.organization,
                          subject=instance.user.get_username(),
                          params={"role": instance.role, "via": "api"})
