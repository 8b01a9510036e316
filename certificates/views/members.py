"""The members of an organisation and their roles.

Everyone in the organisation sees who else is in it; administrators invite
people by e-mail (see accounts.invitations) and change roles up to
administrator; only owners make or unmake owners. Nobody changes their own
role, and the last owner stays, so an organisation can never lock itself out.
Every change is in the audit log.
"""

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.utils.translation import get_language
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from accounts import invitations
from accounts.models import Invitation, Membership, Role
from accounts.tenancy import scoped

from ..forms import InviteForm
from ..models import AuditEvent
from .common import can, portal_view, require, roles


def _grantable(request):
    """The roles this person may give (and take away)."""
    top = Role.OWNER if can(request, Role.OWNER) else Role.ADMIN
    values = Role.values[: Role.values.index(top) + 1]
    return [(value, label) for value, label in Role.choices if value in values]


def _members(request):
    return scoped(Membership, request.user).filter(
        organization=request.organization).select_related("user")


@portal_view
def member_list(request):
    return _list_page(request)


def _list_page(request, form=None):
    grantable = _grantable(request)
    if form is None:
        form = InviteForm(roles=grantable, initial={"role": Role.VIEWER,
                                                    "language": get_language()})
    members = _members(request).order_by("user__username")
    pending = (Invitation.open(timezone.now()).filter(organization=request.organization)
               .select_related("invited_by") if can(request, Role.ADMIN) else [])
    return render(request, "certificates/member_list.html", {
        "members": members,
        "invitations": pending,
        "form": form,
        "grantable": grantable,
        "grantable_values": [value for value, _label in grantable],
        **roles(request),
    })


@require_POST
@portal_view
def member_invite(request):
    require(request, Role.ADMIN)
    form = InviteForm(request.POST, roles=_grantable(request))
    if not form.is_valid():
        return _list_page(request, form)
    data = form.cleaned_data
    invitation, token = invitations.invite(
        organization=request.organization, email=data["email"], role=data["role"],
        by=request.user, language=data["language"])
    if invitation is not None:
        AuditEvent.record(request, action=AuditEvent.Action.INVITATION_SENT,
                          subject=invitation.email,
                          params={"email": invitation.email, "role": invitation.role})
        invitations.send(invitation, token)  # committed: no transaction held over SMTP
    # The same answer whether or not the address has an account, here or elsewhere.
    messages.success(request, _("If the address can be invited, an e-mail with a link "
                                "was sent to it."))
    return redirect("certificates:members")


@require_POST
@portal_view
def invitation_revoke(request, pk):
    require(request, Role.ADMIN)
    invitation = get_object_or_404(
        scoped(Invitation, request.user).filter(organization=request.organization), pk=pk)
    if invitation.role not in [value for value, _label in _grantable(request)]:
        raise PermissionDenied  # only owners unmake what only owners make
    if invitations.revoke(invitation):
        AuditEvent.record(request, action=AuditEvent.Action.INVITATION_REVOKED,
                          subject=invitation.email,
                          params={"email": invitation.email, "role": invitation.role})
        messages.success(request, _("The invitation of %(email)s is revoked.")
                         % {"email": invitation.email})
    return redirect("certificates:members")


def _editable(request, pk):
    require(request, Role.ADMIN)
    membership = get_object_or_404(_members(request), pk=pk)
    allowed = [value for value, _label in _grantable(request)]
    if membership.user_id == request.user.pk or membership.role not in allowed:
        raise PermissionDenied
    return membership


def _last_owner(membership) -> bool:
    return membership.role == Role.OWNER and not Membership.objects.filter(
        organization=membership.organization, role=Role.OWNER).exclude(pk=membership.pk).exists()


@require_POST
@portal_view
def member_role(request, pk):
    membership = _editable(request, pk)
    role = request.POST.get("role")
    if role not in [value for value, _label in _grantable(request)]:
        raise PermissionDenied
    if _last_owner(membership) and role != Role.OWNER:
        messages.error(request, _("The last owner cannot be demoted."))
    else:
        Membership.objects.filter(pk=membership.pk).update(role=role)
        AuditEvent.record(request, action=AuditEvent.Action.ROLE_CHANGED,
                          subject=membership.user.get_username(),
                          params={"from_role": membership.role, "to_role": role})
        messages.success(request, _("Role of %(name)s changed.")
                         % {"name": membership.user.get_username()})
    return redirect("certificates:members")


@require_POST
@portal_view
def member_remove(request, pk):
    membership = _editable(request, pk)
    if _last_owner(membership):
        messages.error(request, _("The last owner cannot be removed."))
    else:
        membership.delete()
        AuditEvent.record(request, action=AuditEvent.Action.MEMBER_REMOVED,
                          subject=membership.user.get_username(),
                          params={"role": membership.role})
        messages.success(request, _("%(name)s removed from the organisation.")
                         % {"name": membership.user.get_username()})
    return redirect("certificates:members")


@require_POST
@portal_view
def require_mfa(request):
    """Whether every member must sign in with a second factor (owners and
    administrators always must)."""
    from ..models import AuditEvent

    require(request, Role.ADMIN)
    required = request.POST.get("require_mfa") == "on"
    organization = request.organization
    if organization.require_mfa != required:
        type(organization).objects.filter(pk=organization.pk).update(require_mfa=required)
        AuditEvent.record(request, action=AuditEvent.Action.MFA_CHANGED,
                          subject=organization.name, params={"require_mfa": required})
    messages.success(request, _("Every member must now use two-factor authentication.")
                     if required else
                     _("Two-factor authentication is required of owners and administrators "
                       "only."))
    return redirect("certificates:members")
