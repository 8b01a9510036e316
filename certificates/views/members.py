"""The members of an organisation and their roles.

Everyone in the organisation sees who else is in it; administrators add people
and change roles up to administrator; only owners make or unmake owners. Nobody
changes their own role, and the last owner stays, so an organisation can never
lock itself out.
"""

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from accounts.models import Membership, Role
from accounts.tenancy import scoped

from ..forms import MemberForm
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
        form = MemberForm(roles=grantable, initial={"role": Role.VIEWER})
    members = _members(request).order_by("user__username")
    return render(request, "certificates/member_list.html", {
        "members": members,
        "form": form,
        "grantable": grantable,
        "grantable_values": [value for value, _label in grantable],
        **roles(request),
    })


@require_POST
@portal_view
def member_add(request):
    require(request, Role.ADMIN)
    form = MemberForm(request.POST, roles=_grantable(request))
    if not form.is_valid():
        return _list_page(request, form)
    user = form.cleaned_data["person"]
    membership, created = Membership.objects.get_or_create(
        user=user, organization=request.organization,
        defaults={"role": form.cleaned_data["role"]})
    if created:
        messages.success(request, _("%(name)s added.") % {"name": user.get_username()})
    else:
        messages.info(request, _("%(name)s is a member already; change the role below.")
                      % {"name": user.get_username()})
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
