"""Bearer tokens: `Authorization: Bearer fjp_<prefix>_<secret>`."""

from django.utils.translation import gettext_lazy as _
from rest_framework import authentication, exceptions

from .models import APIToken


class TokenAuthentication(authentication.BaseAuthentication):
    keyword = "Bearer"

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).split()
        if not header or header[0].lower() != self.keyword.lower().encode():
            return None  # not ours: session authentication may still apply
        if len(header) != 2:
            raise exceptions.AuthenticationFailed(_(
                "The Authorization header must be “Bearer <token>”, with no spaces in the token."))
        try:
            raw = header[1].decode("ascii")
        except UnicodeDecodeError as exc:
            raise exceptions.AuthenticationFailed(_("The token holds invalid characters.")) from exc
        return self.authenticate_token(raw)

    def authenticate_token(self, raw):
        parts = APIToken.split(raw)
        invalid = exceptions.AuthenticationFailed(_("Invalid token."))
        if parts is None:
            raise invalid
        prefix, secret = parts
        token = APIToken.objects.select_related("user").filter(prefix=prefix).first()
        if token is None or not token.matches(secret) or not token.user.is_active:
            raise invalid
        if token.revoked_at is not None:
            raise exceptions.AuthenticationFailed(_("This token has been revoked."))
        if not token.is_active():
            raise exceptions.AuthenticationFailed(_("This token has expired."))
        token.touch()
        return token.user, token

    def authenticate_header(self, request):
        return f'{self.keyword} realm="api"'
