"""The page behind an invitation link: join the organisation, with the
account of the invited address or with a new one.

The link is mailed to one address, so only that address may use it: a person
signed in with an account of another address is refused (a forwarded link, or
a shared browser where someone else is signed in, must not add the wrong
person). A new account takes the invitation's address; receiving the link
proved it.
"""

from django.contrib import messages
from django.contrib.auth import get_user_model
from django.db import transaction
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import urlencode
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache

from accounts import invitations

from ..forms import NewAccountForm
from ..models import AuditEvent
from .common import SESSION_KEY


def _ended(request, reason, status=410):
    return render(request, "certificates/invitation_ended.html", {"reason": reason},
                  status=status)


def _accepted(request, invitation, user, membership, created, new_account):
    AuditEvent.record(request, action=AuditEvent.Action.INVITATION_ACCEPTED,
                      organization=invitation.organization, user=user,
                      subject=user.get_username(),
                      params={"email": invitation.email, "role": membership.role,
                              "new_account": new_account})
    if created:
        messages.success(request, _("Welcome to %(organization)s.")
                         % {"organization": invitation.organization.name})
    else:
        messages.info(request, _("You are a member of %(organization)s already; your role "
                                 "stays as it was.")
                      % {"organization": invitation.organization.name})


@never_cache
def invitation_accept(request, token):
    invitation = invitations.find(token)
    if invitation is None:
        return _ended(request, "unknown", status=404)
    state = invitations.state(invitation)
    if state != "open":
        return _ended(request, state)
    context = {"invitation": invitation}
    if request.user.is_authenticated:
        if not invitations.email_matches(invitation, request.user):
            return render(request, "certificates/invitation_accept.html",
                          {**context, "mismatch": True}, status=403)
        if request.method == "POST":
            try:
                membership, created = invitations.accept(invitation, request.user)
            except invitations.NotOpen:
                return _ended(request, invitations.state(invitation.__class__.objects.get(
                    pk=invitation.pk)))
            _accepted(request, invitation, request.user, membership, created, False)
            request.session[SESSION_KEY] = invitation.organization_id
            return redirect("certificates:dashboard")
        return render(request, "certificates/invitation_accept.html", context)

    has_account = get_user_model().objects.filter(
        email__iexact=invitation.email, is_active=True).exists()
    form = None if has_account else NewAccountForm(request.POST or None)
    if request.method == "POST" and form is not None and form.is_valid():
        form.instance.email = invitation.email
        form.instance.language = invitation.language
        try:
            with transaction.atomic():
                user = form.save()
                membership, created = invitations.accept(invitation, user)
        except invitations.NotOpen:
            return _ended(request, invitations.state(invitation.__class__.objects.get(
                pk=invitation.pk)))
        _accepted(request, invitation, user, membership, created, True)
        messages.success(request, _("Your account %(name)s is ready: sign in.")
                         % {"name": user.get_username()})
        return redirect(reverse("login") + "?" + urlencode(
            {"next": reverse("certificates:dashboard")}))
    return render(request, "certificates/invitation_accept.html", {
        **context, "form": form, "has_account": has_account,
        "login_url": reverse("login") + "?" + urlencode({"next": request.path})})
