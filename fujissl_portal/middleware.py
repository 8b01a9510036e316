"""Answers meant for one signed-in person are kept by no cache: neither a shared
proxy's nor the browser's disk, where the next user of the machine would find
them (certificate lists, hosts, API answers)."""

from django.urls import resolve
from django.utils import translation
from django.utils.cache import add_never_cache_headers


class NoStoreForSignedIn:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        # The API's token authentication sets request.user inside the view, so
        # this is read on the way out.
        user = getattr(request, "user", None)
        personal = (user is not None and user.is_authenticated) or \
            "HTTP_AUTHORIZATION" in request.META
        if personal and "no-store" not in response.get("Cache-Control", ""):
            add_never_cache_headers(response)
        return response


class AgentEndpoints:
    """The agent protocol (/agent/) takes a short way through the stack.

    Thousands of agents check in every few minutes, most of them to hear that
    nothing waits, and the middleware for people (sessions, sign-in, MFA,
    messages, the page's CSP) cost as much CPU as the check-in itself
    (bench/agents.py). An agent has no session or cookie and reads JSON, so
    its requests go from SecurityMiddleware (placed before this) straight to
    the view, with what they still need: the language the agent asks for,
    never caching (answers hold private keys) and headers that forbid
    rendering the answer as a page."""

    PREFIX = "/agent/"
    POLICY = "default-src 'none'; frame-ancestors 'none'"

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if not request.path_info.startswith(self.PREFIX):
            return self.get_response(request)
        match = resolve(request.path_info)
        request.resolver_match = match
        with translation.override(translation.get_language_from_request(request)):
            response = match.func(request, *match.args, **match.kwargs)
            if callable(getattr(response, "render", None)):
                response = response.render()  # DRF's answers render here, not in the handler
        add_never_cache_headers(response)
        response.headers.setdefault("Content-Security-Policy", self.POLICY)
        response.headers.setdefault("X-Frame-Options", "DENY")
        return response
