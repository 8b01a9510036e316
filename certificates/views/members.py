"""The members of an organisation and their roles.

Everyone in the organisation sees who else is in it; administrators invite
people by e-mail (see accounts.invitations) and change roles up to
administrator; only owners make or unmake owners. Nobody changes their own
role, and the last owner stays, so an organisation can never lock itself out.
Every change is in the audit log.
"""

from django import forms
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.utils.translation import get_language
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from accounts import invitations, members
from accounts.models import Invitation, Membership, Organization, Role
from accounts.organizations import time_zones
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


class OrganizationForm(forms.ModelForm):
    """The organisation's name and the time zone its pages and mails are in."""

    class Meta:
        model = Organization
        fields = ["name", "time_zone"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["time_zone"] = forms.ChoiceField(
            label=self.fields["time_zone"].label, help_text=self.fields["time_zone"].help_text,
            choices=[(zone, zone) for zone in time_zones()])


def _list_page(request, form=None, organization_form=None):
    grantable = _grantable(request)
    if form is None:
        form = InviteForm(roles=grantable, initial={"role": Role.VIEWER,
                                                    "language": get_language()})
    people = _members(request).order_by("user__username")
    pending = (Invitation.open(timezone.now()).filter(organization=request.organization)
               .select_related("invited_by") if can(request, Role.ADMIN) else [])
    return render(request, "certificates/member_list.html", {
        "members": people,
        "invitations": pending,
        "form": form,
        "grantable": grantable,
        "grantable_values": [value for value, _label in grantable],
        "organization_form": organization_form or OrganizationForm(
            instance=request.organization),
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


def _member(request, pk):
    require(request, Role.ADMIN)
    return get_object_or_404(_members(request), pk=pk)


def _refused(request, refusal):
    """A change the rules refuse: a mistake of the person's said in words, one
    the page never offers (another's owner, one's own role) a 403."""
    if refusal.code != "last_owner":
        raise PermissionDenied
    messages.error(request, refusal.message)
    return redirect("certificates:members")


@require_POST
@portal_view
def member_role(request, pk):
    membership = _member(request, pk)
    role = request.POST.get("role")
    try:
        before = members.change_role(membership=membership, role=role, by=request.user)
    except members.Refused as refusal:
        return _refused(request, refusal)
    AuditEvent.record(request, action=AuditEvent.Action.ROLE_CHANGED,
                      subject=membership.user.get_username(),
                      params={"from_role": before, "to_role": role})
    messages.success(request, _("Role of %(name)s changed.")
                     % {"name": membership.user.get_username()})
    return redirect("certificates:members")


@require_POST
@portal_view
def member_remove(request, pk):
    membership = _member(request, pk)
    try:
        members.remove(membership=membership, by=request.user)
    except members.Refused as refusal:
        return _refused(request, refusal)
    AuditEvent.record(request, action=AuditEvent.Action.MEMBER_REMOVED,
                      subject=membership.user.get_username(),
                      params={"role": membership.role})
    messages.success(request, _("%(name)s removed from the organisation.")
                     % {"name": membership.user.get_username()})
    return redirect("certificates:members")


@require_POST
@portal_view
def organization_settings(request):
    require(request, Role.ADMIN)
    organization = request.organization
    before = {"name": organization.name, "time_zone": organization.time_zone}
    form = OrganizationForm(request.POST, instance=organization)
    if not form.is_valid():
        return _list_page(request, organization_form=form)
    form.save()
    fields = [name for name, value in before.items() if getattr(organization, name) != value]
    if fields:
        AuditEvent.record(request, action=AuditEvent.Action.ORGANIZATION_CHANGED,
                          subject=organization.name, params={"fields": fields})
    messages.success(request, _("Changes saved."))
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
