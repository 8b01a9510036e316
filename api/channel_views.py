"""An organisation's notification channels in the API (administrators only, as
in the browser): an apprise URL, the alert kinds it takes and its readers'
language, and a test message. The URL holds the channel's secrets: it is
write-only, encrypted at rest, and shown only as apprise masks it."""

from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import mixins, serializers
from rest_framework.decorators import action
from rest_framework.response import Response

from accounts.models import Role
from accounts.tenancy import scoped
from certificates.models import AuditEvent, NotificationChannel
from certificates.notify import channels

from .settings_serializers import ChannelSerializer
from .views import Audited, PortalViewSet


class ChannelTestSerializer(serializers.Serializer):
    sent = serializers.BooleanField()
    error = serializers.CharField(allow_blank=True, help_text=_(
        "Why the channel did not take the message; empty when it did."))


CHANNEL_ROLES = {name: Role.ADMIN for name in (
    "list", "retrieve", "create", "update", "partial_update", "destroy", "test")}


@extend_schema_view(list=extend_schema(summary=_("Notification channels (administrators)")))
class ChannelViewSet(Audited, mixins.ListModelMixin, mixins.RetrieveModelMixin,
                     mixins.CreateModelMixin, mixins.UpdateModelMixin, mixins.DestroyModelMixin,
                     PortalViewSet):
    """Alerts besides e-mail, through apprise (Slack, Microsoft Teams, LINE, ntfy,
    PagerDuty, Opsgenie, a JSON webhook...)."""

    model = NotificationChannel
    serializer_class = ChannelSerializer
    roles = CHANNEL_ROLES
    audited = (AuditEvent.Action.CHANNEL_CREATED, AuditEvent.Action.CHANNEL_CHANGED,
               AuditEvent.Action.CHANNEL_DELETED)

    def get_queryset(self):
        # Administrators only, in lists too: a channel is configuration.
        return scoped(NotificationChannel, self.request.user, at_least=Role.ADMIN)

    @extend_schema(request=None, responses={200: ChannelTestSerializer},
                   summary=_("Send a test message"),
                   description=_("Sends a test message to the channel now, in its language, "
                                 "and says whether the channel took it."))
    @action(detail=True, methods=["post"])
    def test(self, request, pk=None):
        sent, error = channels.test(self.get_object(), by=request.user)
        return Response({"sent": sent, "error": error})
