from django.contrib import admin
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from fujissl_portal.admin_mixins import TenantAdminMixin

from .models import APIToken, Webhook, WebhookDelivery


@admin.register(APIToken)
class APITokenAdmin(TenantAdminMixin, admin.ModelAdmin):
    list_display = ("name", "user", "prefix", "scopes", "expires_at", "last_used_at",
                    "revoked_at")
    search_fields = ("name", "prefix", "user__username")
    # Tokens are made on /api/tokens/, where the secret is shown once; here they
    # can be looked at and revoked, never created or read back.
    readonly_fields = ("user", "prefix", "secret_hash", "scopes", "created_at", "last_used_at")
    actions = ["revoke"]

    def has_add_permission(self, request):
        return False

    def get_readonly_fields(self, request, obj=None):
        fields = super().get_readonly_fields(request, obj)
        if request.user.is_superuser:
            return fields
        # Revocation only goes one way (the action below) and a lifetime is
        # chosen when the token is made: a typed date could un-revoke a stolen
        # token or make it live for ever.
        return (*fields, "expires_at", "revoked_at")

    @admin.action(description=_("Revoke the selected tokens"), permissions=["change"])
    def revoke(self, request, queryset):
        count = queryset.filter(revoked_at__isnull=True).update(revoked_at=timezone.now())
        self.message_user(request, ngettext("%(count)d token revoked.",
                                            "%(count)d tokens revoked.", count)
                          % {"count": count})

    def get_queryset(self, request):
        queryset = super().get_queryset(request)
        return queryset if request.user.is_superuser else queryset.filter(user=request.user)


class DeliveryInline(TenantAdminMixin, admin.TabularInline):
    model = WebhookDelivery
    extra = 0
    can_delete = False
    fields = ("event", "status", "status_code", "attempts", "next_attempt_at", "delivered_at",
              "error")
    readonly_fields = fields
    show_change_link = True

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Webhook)
class WebhookAdmin(TenantAdminMixin, admin.ModelAdmin):
    list_display = ("url", "organization", "events", "active", "created_at")
    list_filter = ("active",)


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(TenantAdminMixin, admin.ModelAdmin):
    list_display = ("event", "webhook", "status", "status_code", "attempts", "next_attempt_at",
                    "delivered_at")
    list_filter = ("status", "event")
    readonly_fields = ("webhook", "event", "payload", "status", "status_code", "error",
                       "attempts", "next_attempt_at", "delivered_at", "created_at")
