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
from .invitations import invitation_accept
from .members import (
    invitation_revoke,
    member_invite,
    member_list,
    member_remove,
    member_role,
    require_mfa,
)
from .revocation import revoke_version
from .runs import run_detail, run_list, run_steps

__all__ = [
    "agent_host_create", "make_enrolment_code", "revoke_agent",
    "audit_log", "invitation_accept", "invitation_revoke", "member_invite",
    "ca_account_create", "ca_account_edit", "ca_account_test",
    "ca_account_detail", "ca_account_list", "certificate_create", "certificate_detail",
    "certificate_edit", "certificate_list", "confirm_host_key", "dashboard", "deploy",
    "download", "download_key", "fetch_host_key", "host_create", "host_detail", "host_edit",
    "host_list", "incident_create", "incident_detail", "incident_list", "incident_pause",
    "incident_report", "incident_resume", "member_list", "member_remove", "member_role",
    "order_detail",
    "order_list", "renew", "require_mfa", "revoke_version", "run_detail", "run_list",
    "run_steps", "set_language",
    "switch_organization", "test_connection", "top_up",
]
