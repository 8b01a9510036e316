"""What the API shows and accepts of an organisation's webhooks, notification
channels and invitations; webhook secrets and channel URLs are write-only,
invitation tokens only mailed."""

from django.utils.translation import gettext_lazy as _
from rest_framework import serializers

from accounts.models import Role
from accounts.tenancy import has_role
from certificates.models import Notification, NotificationChannel
from certificates.notify import channels

from .models import Event, Webhook, WebhookDelivery
from .serializer_base import OrganizationField, PortalModelSerializer


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


class ChannelSerializer(PortalModelSerializer):
    write_role = Role.ADMIN
    # apprise's masked version of the URL, worked out from the URL given.
    filled_by_clean = ("shown",)

    organization = OrganizationField(required=False, help_text=_(
        "Id of the organisation; may be left out if you belong to only one."))
    url = serializers.CharField(write_only=True, max_length=2000, help_text=_(
        "The channel's address as apprise writes it, for example "
        "slack://TokenA/TokenB/TokenC/#channel or ntfys://ntfy.example.org/topic; never shown "
        "again (see shown). Leave it out of a change to keep the stored one."))
    shown = serializers.CharField(read_only=True, help_text=_(
        "The URL as apprise shows it, its secrets masked."))
    kinds = serializers.ListField(
        child=serializers.ChoiceField(choices=Notification.Kind.choices), required=False,
        max_length=len(Notification.Kind.values),
        help_text=_("The alert kinds sent to this channel."))

    class Meta:
        model = NotificationChannel
        fields = ["id", "organization", "name", "url", "shown", "kinds", "language",
                  "enabled", "created_at", "last_sent_at", "last_error"]
        read_only_fields = ["created_at", "last_sent_at", "last_error"]
        # The name is unique within the organisation, which may be left out: the
        # model's own constraint check (in full_clean) judges it instead.
        validators = []

    def get_fields(self):
        fields = super().get_fields()
        if self.instance is not None and not isinstance(self.instance, list):
            fields["organization"].read_only = True
            fields["url"].required = False
        return fields

    def validate_kinds(self, value):
        return list(dict.fromkeys(value))  # as chosen, each once

    def prepare_instance(self, instance, attrs):
        if "url" not in attrs:
            return
        attrs["url"] = instance.url = attrs["url"].strip()
        try:
            instance.shown = channels.describe(instance.url)
        except channels.ChannelError as exc:
            raise serializers.ValidationError({"url": [str(exc)]}, code="invalid") from exc
