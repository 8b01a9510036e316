"""What the API shows and accepts of an organisation's webhooks and invitations;
webhook secrets are write-only, invitation tokens only mailed."""

from django.utils.translation import gettext_lazy as _
from rest_framework import serializers

from accounts.models import Role
from accounts.tenancy import has_role

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
