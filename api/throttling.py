from django.conf import settings
from rest_framework.throttling import SimpleRateThrottle

from .models import APIToken


class TokenRateThrottle(SimpleRateThrottle):
    """API_THROTTLE_RATE per token; a browser session counts per person."""

    scope = "api"

    def get_rate(self):
        return settings.API_THROTTLE_RATE

    def allow_request(self, request, view):
        # Read on every request, so that a test or a reload can change it.
        self.rate = self.get_rate()
        self.num_requests, self.duration = self.parse_rate(self.rate)
        return super().allow_request(request, view)

    def get_cache_key(self, request, view):
        if isinstance(request.auth, APIToken):
            ident = f"token-{request.auth.pk}"
        elif request.user and request.user.is_authenticated:
            ident = f"user-{request.user.pk}"
        else:
            ident = f"addr-{self.get_ident(request)}"
        return self.cache_format % {"scope": self.scope, "ident": ident}
