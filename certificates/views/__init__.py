"""Server-rendered pages, one module per noun. Every object is fetched through
the tenancy helper (accounts.tenancy): another organisation's object is a 404."""

from .account import profile, set_language, switch_organization
from .agent_hosts import agent_host_create, make_enrolment_code, revoke_agent
from .audit import audit_log
from .ca_accounts import (
    ca_account_create,
    ca_account_detail,
    ca_account_edit,
    ca_account_list,
    ca_account_move_away,
    ca_account_test,
    order_detail,
    order_list,
    top_up,
)
from .certificate_archive import certificate_archive, certificate_restore
from .certificate_delete import certificate_delete
from .certificates import (
    acme_dns_register,
    certificate_create,
    certificate_detail,
    certificate_edit,
    certificate_list,
    deploy,
    download,
    download_key,
    renew,
)
from .channels import channel_create, channel_delete, channel_edit, channel_list, channel_test
from .dashboard import dashboard
from .discovery import discovery_page, discovery_review, discovery_run
from .dns_credentials import (
    dns_credential_create,
    dns_credential_edit,
    dns_credential_list,
    dns_credential_test,
)
from .endpoints import endpoint_check, endpoint_detail, endpoint_list, endpoint_stop
from .hosts import (
    confirm_host_key,
    fetch_host_key,
    host_create,
    host_detail,
    host_edit,
    host_list,
    test_connection,
)
from .incidents import (
    incident_create,
    incident_detail,
    incident_list,
    incident_pause,
    incident_report,
    incident_resume,
)
from .inventory import (
    inventory_adopt,
    inventory_detail,
    inventory_export,
    inventory_import,
    inventory_list,
    inventory_remove,
)
from .invitations import invitation_accept
from .members import (
    invitation_revoke,
    member_invite,
    member_list,
    member_remove,
    member_role,
    organization_settings,
    require_mfa,
)
from .revocation import revoke_version
from .runs import run_detail, run_list, run_steps
from .webhooks import webhook_create, webhook_delete, webhook_edit, webhook_list

__all__ = [
    "acme_dns_register", "agent_host_create", "audit_log", "ca_account_create",
    "ca_account_detail", "ca_account_edit", "ca_account_list", "ca_account_move_away",
    "ca_account_test", "certificate_create", "certificate_delete", "certificate_detail",
    "certificate_edit", "certificate_list", "channel_create", "channel_delete", "channel_edit",
    "channel_list", "channel_test", "confirm_host_key", "dashboard", "deploy",
    "discovery_page", "discovery_review", "discovery_run", "dns_credential_create",
    "dns_credential_edit",
    "dns_credential_list", "dns_credential_test", "download", "download_key", "endpoint_check",
    "endpoint_detail", "endpoint_list", "endpoint_stop", "fetch_host_key", "host_create",
    "host_detail", "host_edit", "host_list", "incident_create", "incident_detail",
    "incident_list", "incident_pause", "incident_report", "incident_resume", "inventory_adopt",
    "inventory_detail", "inventory_export", "inventory_import", "inventory_list",
    "inventory_remove", "invitation_accept", "invitation_revoke", "make_enrolment_code",
    "member_invite", "member_list", "member_remove", "member_role", "order_detail",
    "organization_settings",
    "order_list", "profile", "renew", "require_mfa", "revoke_agent", "revoke_version",
    "run_detail", "run_list", "run_steps", "set_language", "switch_organization",
    "test_connection", "top_up", "webhook_create", "webhook_delete", "webhook_edit",
    "webhook_list", "certificate_archive", "certificate_restore",
]
