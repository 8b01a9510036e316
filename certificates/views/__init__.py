"""Server-rendered pages, one module per noun. Every object is fetched through
the tenancy helper (accounts.tenancy): another organisation's object is a 404."""

from .account import set_language, switch_organization
from .agent_hosts import agent_host_create, make_enrolment_code, revoke_agent
from .audit import audit_log
from .ca_accounts import (
    ca_account_create,
    ca_account_detail,
    ca_account_edit,
    ca_account_list,
    ca_account_test,
    order_detail,
    order_list,
    top_up,
)
from .certificates import (
    certificate_create,
    certificate_detail,
    certificate_edit,
    certificate_list,
    deploy,
    download,
    download_key,
    renew,
)
from .dashboard import dashboard
from .discovery import discovery_page, discovery_review
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
    require_mfa,
)
from .runs import run_detail, run_list, run_steps

__all__ = [
    "agent_host_create", "audit_log", "ca_account_create", "ca_account_detail", "ca_account_edit",
    "ca_account_list", "ca_account_test", "certificate_create", "certificate_detail",
    "certificate_edit", "certificate_list", "confirm_host_key", "dashboard", "deploy",
    "discovery_page", "discovery_review", "download", "download_key", "endpoint_check",
    "endpoint_detail", "endpoint_list", "endpoint_stop", "fetch_host_key", "host_create",
    "host_detail", "host_edit", "host_list", "inventory_adopt", "inventory_detail",
    "inventory_export", "inventory_import", "inventory_list", "inventory_remove",
    "invitation_accept", "invitation_revoke", "make_enrolment_code", "member_invite",
    "member_list", "member_remove", "member_role", "order_detail", "order_list", "renew",
    "require_mfa", "revoke_agent", "run_detail", "run_list", "run_steps", "set_language",
    "switch_organization", "test_connection", "top_up",
]
