"""What the API shows and accepts of organisations and their members."""

from django.utils.translation import gettext_lazy as _
from rest_framework import serializers

from accounts.models import Membership, Organization, Role
from accounts.organizations import EDITABLE_FIELDS, validate_time_zone

from .serializer_base import PortalModelSerializer


class OrganizationSerializer(PortalModelSerializer):
    write_role = Role.ADMIN

    time_zone = serializers.CharField(max_length=64, required=False, help_text=_(
        "An IANA time zone such as Asia/Tokyo: pages and e-mails show times in it."),
        validators=[validate_time_zone])

    class Meta:
        model = Organization
        fields = ["id", "slug", *EDITABLE_FIELDS, "created_at"]
        read_only_fields = ["slug", "created_at"]


class MemberSerializer(PortalModelSerializer):
    write_role = Role.ADMIN

    username = serializers.CharField(source="user.username", read_only=True)
    email = serializers.EmailField(source="user.email", read_only=True)
    role = serializers.ChoiceField(choices=Role.choices, help_text=_(
        "Administrators give roles up to administrator; only owners make owners. Nobody "
        "changes their own role, and the last owner stays one."))

    class Meta:
        model = Membership
        fields = ["id", "organization", "username", "email", "role", "created_at"]
        read_only_fields = ["organization", "created_at"]
