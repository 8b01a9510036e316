"""The Django admin for every model: scoped lists, search, filters, no secrets shown."""

from django.contrib import admin

from fujissl_portal.admin_mixins import OnlySuperusersWriteMixin, TenantAdminMixin

from .auditing import AuditedAdmin, audit_actions
from .models import (
    AuditEvent,
    CAAccount,
    Certificate,
    CertificateVersion,
    Deployment,
    DeployRequest,
    DepositEntry,
    DNSCredential,
    Notification,
    Order,
    RenewalRun,
    RenewalStep,
    Reservation,
    TargetHost,
)


class DeploymentInline(TenantAdminMixin, admin.TabularInline):
    model = Deployment
    extra = 0
    fields = ("host", "last_status", "served", "last_deployed_at")
    readonly_fields = ("last_status", "served", "last_deployed_at")


@admin.register(CAAccount)
class CAAccountAdmin(AuditedAdmin, TenantAdminMixin, admin.ModelAdmin):
    audited = audit_actions("CA_ACCOUNT")
    list_display = ("name", "organization", "directory_url", "price", "currency",
                    "low_balance_threshold")
    list_select_related = ("organization",)
    list_filter = ("organization", "currency")
    search_fields = ("name", "directory_url", "contact_email", "eab_kid")
    readonly_fields = ("account_url",)


@admin.register(DepositEntry)
class DepositEntryAdmin(OnlySuperusersWriteMixin, TenantAdminMixin, admin.ModelAdmin):
    """The ledger is append-only: money comes in through the portal's top-up
    (audited) and goes out through renewals; only a superuser corrects it here."""

    list_display = ("created_at", "ca_account", "kind", "amount", "reference", "created_by")
    list_select_related = ("ca_account", "created_by")
    list_filter = ("kind", "ca_account__organization")
    search_fields = ("reference", "note", "ca_account__name")
    date_hierarchy = "created_at"


@admin.register(Reservation)
class ReservationAdmin(TenantAdminMixin, admin.ModelAdmin):
    """Read-only: a reservation is opened and closed by renewal runs alone."""

    list_display = ("created_at", "ca_account", "run", "amount", "status", "closed_at")
    list_select_related = ("ca_account",)
    list_filter = ("status", "ca_account__organization")

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(Order)
class OrderAdmin(TenantAdminMixin, admin.ModelAdmin):
    list_display = ("code", "organization", "ca_account", "product", "price", "status",
                    "purchased_at", "activated_at")
    list_select_related = ("organization", "ca_account")
    list_filter = ("status", "product", "organization")
    search_fields = ("code", "certificate__common_name")
    raw_id_fields = ("certificate",)


@admin.register(Certificate)
class CertificateAdmin(AuditedAdmin, TenantAdminMixin, admin.ModelAdmin):
    audited = audit_actions("CERTIFICATE")
    list_display = ("common_name", "organization", "ca_account", "key_type", "challenge",
                    "auto_renew", "expires_at", "renew_after", "failure_count")
    list_select_related = ("organization", "ca_account")
    list_filter = ("challenge", "key_type", "auto_renew", "organization", "ca_account")
    search_fields = ("common_name", "sans")
    readonly_fields = ("current_version", "expires_at")
    inlines = [DeploymentInline]


@admin.register(DNSCredential)
class DNSCredentialAdmin(AuditedAdmin, TenantAdminMixin, admin.ModelAdmin):
    audited = audit_actions("DNS_CREDENTIAL")
    list_display = ("name", "organization", "kind", "provider", "server")
    list_select_related = ("organization",)
    list_filter = ("kind", "organization")
    search_fields = ("name", "zones", "server", "provider")


@admin.register(CertificateVersion)
class CertificateVersionAdmin(TenantAdminMixin, admin.ModelAdmin):
    list_display = ("certificate", "serial", "not_before", "not_after", "issuer")
    list_select_related = ("certificate",)
    list_filter = ("certificate__organization",)
    search_fields = ("certificate__common_name", "serial", "fingerprint_sha256")
    # A version is a record of what the CA issued: read it, never edit it here.
    exclude = ("private_key",)
    readonly_fields = ("certificate", "chain_pem", "serial", "not_before", "not_after",
                       "fingerprint_sha256", "issuer", "acme_order_url")


@admin.register(TargetHost)
class TargetHostAdmin(AuditedAdmin, TenantAdminMixin, admin.ModelAdmin):
    audited = audit_actions("HOST")
    list_display = ("name", "organization", "address", "ssh_port", "ssh_user",
                    "host_key_fingerprint", "host_key_confirmed_at")
    list_select_related = ("organization",)
    list_filter = ("organization",)
    search_fields = ("name", "address", "host_key_fingerprint")
    readonly_fields = ("host_key_fingerprint",)


@admin.register(Deployment)
class DeploymentAdmin(TenantAdminMixin, admin.ModelAdmin):
    list_display = ("certificate", "host", "last_status", "served", "last_deployed_at")
    list_select_related = ("certificate", "host")
    list_filter = ("last_status", "served", "host__organization")
    search_fields = ("certificate__common_name", "host__name")


@admin.register(DeployRequest)
class DeployRequestAdmin(TenantAdminMixin, admin.ModelAdmin):
    """The deployment queue, to look at (a stuck host shows here); the portal
    alone writes it."""

    list_display = ("requested_at", "deployment", "version", "run",
                    "finished_at", "status", "error_kind")
    list_select_related = ("deployment__certificate", "deployment__host", "version", "run")
    list_filter = ("status", "host__organization")
    search_fields = ("deployment__certificate__common_name", "host__name", "error")

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


class RenewalStepInline(TenantAdminMixin, admin.TabularInline):
    model = RenewalStep
    extra = 0
    fields = ("at", "name", "host", "status", "detail")
    readonly_fields = fields
    can_delete = False


@admin.register(RenewalRun)
class RenewalRunAdmin(TenantAdminMixin, admin.ModelAdmin):
    list_display = ("certificate", "trigger", "status", "created_at", "started_at",
                    "finished_at")
    list_select_related = ("certificate",)
    list_filter = ("status", "trigger", "certificate__organization")
    search_fields = ("certificate__common_name", "error")
    date_hierarchy = "created_at"
    raw_id_fields = ("certificate", "version")
    exclude = ("private_key",)
    inlines = [RenewalStepInline]


@admin.register(Notification)
class NotificationAdmin(TenantAdminMixin, admin.ModelAdmin):
    list_display = ("created_at", "kind", "recipient", "subject", "sent_at", "error")
    list_select_related = ("organization",)
    list_filter = ("kind", "organization")
    search_fields = ("recipient", "subject", "certificate__common_name")
    raw_id_fields = ("certificate", "ca_account")


@admin.register(AuditEvent)
class AuditEventAdmin(OnlySuperusersWriteMixin, TenantAdminMixin, admin.ModelAdmin):
    """The audit log is read, never written, here; only a superuser deletes
    (retention), never someone whose acts it records."""

    list_display = ("created_at", "action", "user", "subject", "ip_address")
    list_select_related = ("user",)
    list_filter = ("action", "organization")
    search_fields = ("subject", "user__username", "ip_address")
    date_hierarchy = "created_at"

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
