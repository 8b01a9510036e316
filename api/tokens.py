"""The page where people create and revoke their API tokens."""

from datetime import timedelta

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST

from accounts.signin import ensure_recent_authentication
from accounts.tenancy import organizations_of
from certificates.models import AuditEvent

from .models import APIToken, Scope

LIFETIMES = [(30, _("30 days")), (90, _("90 days")), (180, _("180 days")), (365, _("1 year"))]


def _audit(request, action, token):
    """A token acts in every organisation of its person, so each one's log has it."""
    for organization in organizations_of(request.user):
        AuditEvent.record(request, action=action, organization=organization,
                          subject=token.name, params={"scopes": token.scopes})


class TokenForm(forms.Form):
    name = forms.CharField(label=_("Name"), max_length=100,
                           help_text=_("What the token is for, e.g. “inventory sync”."))
    scopes = forms.MultipleChoiceField(
        label=_("Scopes"), choices=Scope.choices, initial=[Scope.READ],
        widget=forms.CheckboxSelectMultiple,
        help_text=_("Read lets the token look; write lets it change, renew and deploy."))
    lifetime = forms.TypedChoiceField(label=_("Expires after"), choices=LIFETIMES, coerce=int,
                                      initial=90)


@never_cache  # the page that shows a new token must not stay in a browser's cache
@login_required
def token_list(request):
    form = TokenForm(request.POST or None)
    created = None
    if request.method == "POST" and form.is_valid():
        if Scope.WRITE in form.cleaned_data["scopes"]:
            # A write token outlives the session; a stolen session must not mint one.
            ensure_recent_authentication(request)
        token, created = APIToken.issue(
            user=request.user, name=form.cleaned_data["name"],
            scopes=form.cleaned_data["scopes"],
            expires_at=timezone.now() + timedelta(days=form.cleaned_data["lifetime"]))
        _audit(request, AuditEvent.Action.TOKEN_CREATED, token)
        form = TokenForm()
    # A person's own tokens only, whatever their role.
    tokens = APIToken.objects.filter(user=request.user)
    return render(request, "api/tokens.html", {
        "form": form, "created": created, "tokens": tokens, "now": timezone.now()})


@login_required
@require_POST
def revoke_token(request, pk):
    token = get_object_or_404(APIToken, pk=pk, user=request.user)
    if APIToken.objects.filter(pk=token.pk, revoked_at__isnull=True).update(
            revoked_at=timezone.now()):
        _audit(request, AuditEvent.Action.TOKEN_REVOKED, token)
    messages.success(request, _("The token “%(name)s” is revoked.") % {"name": token.name})
    return redirect("api:tokens")
