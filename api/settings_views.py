"""The API of an organisation's own settings: webhooks and invitations
(administrators only). Shares the base of every viewset with api.views."""

from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import mixins, status
from rest_framework.decorators import action
from rest_framework.exceptions import PermissionDenied
from rest_framework.response import Response

from accounts import invitations
from accounts.models import Invitation, Role
from accounts.tenancy import has_role, scoped
from certificates.models import AuditEvent

from . import settings_serializers as s
from .models import Webhook
from .views import Audited, PortalViewSet

WEBHOOK_ROLES = {name: Role.ADMIN for name in (
    "list", "retrieve", "create", "update", "partial_update", "destroy", "deliveries")}


@extend_schema_view(list=extend_schema(summary=_("Webhooks (administrators)")))
class WebhookViewSet(Audited, mixins.ListModelMixin, mixins.RetrieveModelMixin,
                     mixins.CreateModelMixin, mixins.UpdateModelMixin, mixins.DestroyModelMixin,
                  PortalViewSet):
    """Receivers of renewal.succeeded, renewal.failed, deployment.not_served and
    deposit.low, signed with X-Portal-Signature: sha256=<HMAC-SHA256 of the raw body>."""

    model = Webhook
    serializer_class = s.WebhookSerializer
    roles = WEBHOOK_ROLES
    audited = (AuditEvent.Action.WEBHOOK_CREATED, AuditEvent.Action.WEBHOOK_CHANGED,
               AuditEvent.Action.WEBHOOK_DELETED)

    def get_queryset(self):
        # Administrators only, in lists too: a webhook's URL is configuration.
        return scoped(Webhook, self.request.user, at_least=Role.ADMIN)

    @extend_schema(responses={200: s.WebhookDeliverySerializer(many=True)},
                   summary=_("Deliveries of a webhook"))
    @action(detail=True, methods=["get"], serializer_class=s.WebhookDeliverySerializer)
    def deliveries(self, request, pk=None):
        webhook = self.get_object()
        page = self.paginate_queryset(webhook.deliveries.order_by("-created_at", "-pk"))
        return self.get_paginated_response(s.WebhookDeliverySerializer(page, many=True).data)


INVITATION_ROLES = {name: Role.ADMIN for name in ("list", "retrieve", "create", "destroy")}


@extend_schema_view(
    list=extend_schema(summary=_("Open invitations (administrators)")),
    create=extend_schema(responses={202: s.InvitationSentSerializer},
                         summary=_("Invite a person by e-mail"),
                         description=_("Mails a link to join with the role. The answer is "
                                       "the same whether or not the address has an "
                                       "account.")),
    destroy=extend_schema(summary=_("Revoke an open invitation")),
)
class InvitationViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin,
                        mixins.CreateModelMixin, mixins.DestroyModelMixin, PortalViewSet):
    model = Invitation
    serializer_class = s.InvitationSerializer
    roles = INVITATION_ROLES

    def get_queryset(self):
        return scoped(Invitation.open(timezone.now()), self.request.user,
                      at_least=Role.ADMIN).select_related("invited_by")

    def create(self, request, *args, **kwargs):
        body = self.get_serializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        invitation, token = invitations.invite(
            organization=data["organization"], email=data["email"], role=data["role"],
            by=request.user, language=data.get("language") or request.LANGUAGE_CODE)
        if invitation is not None:
            AuditEvent.record(request, action=AuditEvent.Action.INVITATION_SENT,
                              organization=invitation.organization, subject=invitation.email,
                              params={"email": invitation.email, "role": invitation.role,
                                      "via": "api"})
            invitations.send(invitation, token)
        return Response({"detail": _("If the address can be invited, an e-mail with a link "
                                     "was sent to it.")}, status=status.HTTP_202_ACCEPTED)

    def perform_destroy(self, instance):
        if instance.role == Role.OWNER and not has_role(self.request.user,
                                                        instance.organization, Role.OWNER):
            raise PermissionDenied(_("Only owners revoke an invitation to become an owner."))
        if invitations.revoke(instance):
            AuditEvent.record(self.request, action=AuditEvent.Action.INVITATION_REVOKED,
                              organization=instance.organization, subject=instance.email,
                              params={"email": instance.email, "role": instance.role,
                                      "via": "api"})
