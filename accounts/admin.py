from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.utils.translation import gettext_lazy as _

from fujissl_portal.admin_mixins import TenantAdminMixin

from .models import Membership, Organization, User


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    autocomplete_fields = ["user"]


@admin.register(User)
class UserAdmin(DjangoUserAdmin):
    fieldsets = DjangoUserAdmin.fieldsets + ((_("Preferences"), {"fields": ("language",)}),)
    list_display = ("username", "email", "first_name", "last_name", "language", "is_staff")
    list_filter = DjangoUserAdmin.list_filter + ("language",)


@admin.register(Organization)
class OrganizationAdmin(TenantAdminMixin, admin.ModelAdmin):
    list_display = ("name", "slug", "time_zone", "require_mfa", "created_at")
    search_fields = ("name", "slug")
    list_filter = ("time_zone", "require_mfa")
    prepopulated_fields = {"slug": ("name",)}
    inlines = [MembershipInline]


@admin.register(Membership)
class MembershipAdmin(TenantAdminMixin, admin.ModelAdmin):
    list_display = ("user", "organization", "role", "created_at")
    list_select_related = ("user", "organization")
    list_filter = ("role", "organization")
    search_fields = ("user__username", "user__email", "organization__name")
    autocomplete_fields = ["user"]
