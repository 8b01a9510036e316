import time

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import logout
from django.contrib.auth.views import redirect_to_login
from django.http import JsonResponse
from django.urls import reverse
from django.utils import translation
from django.utils.translation import gettext_lazy as _


class UserLanguageMiddleware:
    """A signed-in person's preferred language wins over the browser's.

    Placed after LocaleMiddleware and AuthenticationMiddleware, which it overrides.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        language = getattr(getattr(request, "user", None), "language", "")
        if language:
            translation.activate(language)
            request.LANGUAGE_CODE = translation.get_language()
        return self.get_response(request)


SESSION_STARTED_KEY = "portal_session_started"
SESSION_SEEN_KEY = "portal_session_seen"
# The last-seen time is written at most this often: not a session save per request.
SEEN_RESOLUTION_SECONDS = 60


def stamp_session(sender, request, user, **kwargs):
    """On every sign-in (user_logged_in): the session's lifetime starts now."""
    now = time.time()
    request.session[SESSION_STARTED_KEY] = now
    request.session[SESSION_SEEN_KEY] = now


class SessionLifetimeMiddleware:
    """Signs a person out after SESSION_IDLE_SECONDS without a request, and
    SESSION_MAX_SECONDS after sign-in whatever they do; the request then goes on
    as anonymous, so pages send them to the login and the API refuses."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if request.user.is_authenticated:
            now, session = time.time(), request.session
            started = session.get(SESSION_STARTED_KEY)
            seen = session.get(SESSION_SEEN_KEY, started)
            if started is None or seen is None:
                session[SESSION_STARTED_KEY] = session[SESSION_SEEN_KEY] = now
            elif (now - started > settings.SESSION_MAX_SECONDS
                  or now - seen > settings.SESSION_IDLE_SECONDS):
                logout(request)
            elif now - seen > SEEN_RESOLUTION_SECONDS:
                session[SESSION_SEEN_KEY] = now
        return self.get_response(request)


# What a person who must set up a second factor may still reach: the set-up pages
# themselves, re-authentication (which set-up asks for), signing out, the language.
MFA_SETUP_URL_NAMES = {"account_reauthenticate", "account_logout", "logout", "set_language"}


# Pages for people in the api namespace; the rest of it answers in JSON.
API_PAGE_NAMES = {"tokens", "revoke-token", "docs"}


class MFARequiredMiddleware:
    """A person who must have a second factor (accounts.signin.mfa_required) and
    has none reaches nothing but the pages that set one up: pages redirect there,
    the API (by session) answers 403. A bearer token is a credential of its own
    and is not affected: it authenticates in the API view, not here."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_view(self, request, view_func, view_args, view_kwargs):
        from .signin import has_mfa, mfa_required

        if not request.user.is_authenticated:
            return None
        match = request.resolver_match
        name = match.url_name or "" if match else ""
        if name.startswith("mfa_") or name in MFA_SETUP_URL_NAMES:
            return None
        if not mfa_required(request.user) or has_mfa(request.user):
            return None
        message = _("Set up two-factor authentication (an authenticator app or a "
                    "passkey) before you continue: your role or your organisation "
                    "requires it.")
        if match and "api" in match.namespaces and name not in API_PAGE_NAMES:
            return JsonResponse({"detail": str(message)}, status=403)
        messages.warning(request, message)
        return redirect_to_login(request.get_full_path(), reverse("mfa_index"))
