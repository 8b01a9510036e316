from allauth.account.admin import EmailAddressAdmin as AllauthEmailAddressAdmin
from allauth.account.models import EmailAddress
from allauth.mfa.admin import AuthenticatorAdmin as AllauthAuthenticatorAdmin
from allauth.mfa.models import Authenticator
from django.contrib import admin
from django.contrib.auth.admin import GroupAdmin as DjangoGroupAdmin
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.contrib.auth.models import Group
from django.utils.translation import gettext_lazy as _

from fujissl_portal.admin_mixins import OnlySuperusersWriteMixin, TenantAdminMixin

from .models import Membership, Organization, User

# Memberships and people are changed on the portal's members page, which keeps
# its rules (nobody raises their own role, the last owner stays, only owners
# make owners) and records each change in the audit log. Here, staff who are
# not superusers read them; a person may belong to several organisations, so
# editing a person (password, e-mail, staff flags) is for superusers alone.


class MembershipInline(OnlySuperusersWriteMixin, TenantAdminMixin, admin.TabularInline):
    model = Membership
    extra = 0
    autocomplete_fields = ["user"]


@admin.register(User)
class UserAdmin(OnlySuperusersWriteMixin, TenantAdminMixin, DjangoUserAdmin):
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

    # An organisation made here would belong to nobody the maker administers,
    # and deleting one takes its audit log with it.
    def has_add_permission(self, request):
        return request.user.is_superuser and super().has_add_permission(request)

    def has_delete_permission(self, request, obj=None):
        return request.user.is_superuser and super().has_delete_permission(request, obj)


@admin.register(Membership)
class MembershipAdmin(OnlySuperusersWriteMixin, TenantAdminMixin, admin.ModelAdmin):
    list_display = ("user", "organization", "role", "created_at")
    list_select_related = ("user", "organization")
    list_filter = ("role", "organization")
    search_fields = ("user__username", "user__email", "organization__name")
    autocomplete_fields = ["user"]


# Groups carry permissions for every organisation at once.
admin.site.unregister(Group)


@admin.register(Group)
class GroupAdmin(OnlySuperusersWriteMixin, DjangoGroupAdmin):
    pass


# django-allauth registers admins for its own models; they hold each person's
# sign-in e-mail addresses and second factors, so they obey the same scoping.
# Second factors are the superusers' alone: staff have no reason to read or
# remove another person's authenticator.
admin.site.unregister(EmailAddress)
admin.site.unregister(Authenticator)


@admin.register(EmailAddress)
class EmailAddressAdmin(OnlySuperusersWriteMixin, TenantAdminMixin, AllauthEmailAddressAdmin):
    actions = []


@admin.register(Authenticator)
class AuthenticatorAdmin(TenantAdminMixin, AllauthAuthenticatorAdmin):
    def has_module_permission(self, request):
        return request.user.is_superuser

    def has_view_permission(self, request, obj=None):
        return request.user.is_superuser

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return request.user.is_superuser
