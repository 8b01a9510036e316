"""The header's switches (the organisation looked at, the language) and a
person's own settings page."""

import zoneinfo

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404
from django.shortcuts import redirect, render
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_POST
from django.views.i18n import set_language as django_set_language

from accounts.models import User
from accounts.signin import ensure_recent_authentication
from accounts.tenancy import organizations_of
from fujissl_portal.params import strict_int

from ..models import AuditEvent, Notification
from .common import SESSION_KEY, portal_view, roles


def _next(request):
    target = request.POST.get("next") or "/"
    if not url_has_allowed_host_and_scheme(target, {request.get_host()},
                                           require_https=request.is_secure()):
        target = "/"
    return target


@require_POST
@login_required
def switch_organization(request):
    organization = organizations_of(request.user).filter(
        pk=strict_int(request.POST.get("organization")) or 0).first()
    if organization is None:
        raise Http404
    request.session[SESSION_KEY] = organization.pk
    # The page about one object of the old organisation makes no sense in the new one.
    return redirect("certificates:dashboard")


@require_POST
def set_language(request):
    """Django's set_language (cookie), and the signed-in person's preference too:
    it wins over the cookie, so it must change with the switch."""
    language = request.POST.get("language", "")
    user = request.user
    if user.is_authenticated and language in dict(user._meta.get_field("language").choices):
        user.language = language
        user.save(update_fields=["language"])
    return django_set_language(request)


class ProfileForm(forms.ModelForm):
    """A person's own settings: where and how the portal speaks to them."""

    alerts = forms.MultipleChoiceField(
        label=gettext_lazy("Alerts by e-mail"), required=False,
        choices=Notification.Kind.choices, widget=forms.CheckboxSelectMultiple,
        help_text=gettext_lazy("Owners and administrators are mailed these; untick what "
                               "you do not want (the CA account's contact still gets its "
                               "own)."))

    class Meta:
        model = User
        fields = ["email", "language", "time_zone"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        zones = sorted(zoneinfo.available_timezones())
        self.fields["time_zone"] = forms.ChoiceField(
            label=self.fields["time_zone"].label, required=False,
            help_text=self.fields["time_zone"].help_text,
            choices=[("", gettext_lazy("The organisation's"))] + [(z, z) for z in zones])
        self.fields["email"].required = True
        self.initial["alerts"] = [kind for kind in Notification.Kind.values
                                  if self.instance.wants_mail(kind)]

    def save(self, commit=True):
        user = super().save(commit=False)
        wanted = set(self.cleaned_data["alerts"])
        user.muted_alerts = [kind for kind in Notification.Kind.values if kind not in wanted]
        if commit:
            user.save()
        return user


@portal_view
def profile(request):
    """Your settings: e-mail address, language, time zone, the alerts you get,
    with links to your sign-in factors and API tokens."""
    user = request.user
    before = {"email": user.email, "language": user.language, "time_zone": user.time_zone,
              "muted_alerts": list(user.muted_alerts or [])}
    form = ProfileForm(request.POST or None, instance=user)
    if request.method == "POST" and form.is_valid():
        if "email" in form.changed_data:
            # Password resets go to this address: changing it asks for the password.
            ensure_recent_authentication(request)
        form.save()
        fields = [name for name, value in before.items() if getattr(user, name) != value]
        if fields:
            AuditEvent.record(request, action=AuditEvent.Action.PROFILE_CHANGED,
                              subject=user.get_username(), params={"fields": fields})
        messages.success(request, _("Your settings are saved."))
        return redirect("certificates:profile")
    return render(request, "certificates/profile.html", {
        "form": form, "tokens": user.api_tokens.filter(revoked_at__isnull=True).count(),
        **roles(request)})
