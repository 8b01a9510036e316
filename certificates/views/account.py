"""The header's switches: the organisation looked at, and the language."""

from django.contrib.auth.decorators import login_required
from django.http import Http404
from django.shortcuts import redirect
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST
from django.views.i18n import set_language as django_set_language

from accounts.tenancy import organizations_of
from fujissl_portal.params import strict_int

from .common import SESSION_KEY


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
