"""Answers meant for one signed-in person are kept by no cache: neither a shared
proxy's nor the browser's disk, where the next user of the machine would find
them (certificate lists, hosts, API answers)."""

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
