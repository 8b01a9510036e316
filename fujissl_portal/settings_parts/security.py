"""HTTPS behind a reverse proxy, production hardening, the Content-Security-Policy
and the client address the audit log records."""

from django.core.exceptions import ImproperlyConfigured

from .environment import DEBUG, env

# Trusting X-Forwarded-Proto from anyone who can reach the server directly would
# let them pass a plain-HTTP request off as HTTPS; so only when the reverse proxy
# is said to set it: SECURE_PROXY_SSL_HEADER=HTTP_X_FORWARDED_PROTO,https.
_proxy_ssl_header = env.list("SECURE_PROXY_SSL_HEADER", default=[])
if _proxy_ssl_header:
    if len(_proxy_ssl_header) != 2 or not _proxy_ssl_header[0].startswith("HTTP_"):
        raise ImproperlyConfigured(
            f"SECURE_PROXY_SSL_HEADER={','.join(_proxy_ssl_header)!r}: the header as Django "
            "names it and the value meaning HTTPS, e.g. HTTP_X_FORWARDED_PROTO,https.")
    SECURE_PROXY_SSL_HEADER = tuple(_proxy_ssl_header)

# Production hardening: on whenever DEBUG is off, so `check --deploy` passes.
if not DEBUG:
    SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=True)
    SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=False)
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
# HSTS preload enrols the domain in browsers' built-in lists, a decision for the
# domain's owner: SECURE_HSTS_PRELOAD=true opts in, so its reminder is silenced.
SILENCED_SYSTEM_CHECKS = [] if env.bool("SECURE_HSTS_PRELOAD", default=False) else ["security.W021"]
SECURE_CONTENT_TYPE_NOSNIFF = True
# Content-Security-Policy (django-csp): scripts, styles, images and requests from
# the portal itself only, and no inline script or style, so that markup injected
# into a page cannot run. Static files are served by the portal (whitenoise).
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'", "data:"],
        "connect-src": ["'self'"],
        "font-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    },
}
X_FRAME_OPTIONS = "DENY"
SESSION_COOKIE_HTTPONLY = True
# The audit log records who changed what from where. Behind a reverse proxy,
# name the header it sets (as Django spells it in request.META, e.g.
# HTTP_X_FORWARDED_FOR) and how many trusted proxies append to it; unset,
# the connecting address is recorded.
AUDIT_TRUSTED_PROXY_HEADER = env("AUDIT_TRUSTED_PROXY_HEADER", default="")
AUDIT_TRUSTED_PROXY_COUNT = env.int("AUDIT_TRUSTED_PROXY_COUNT", default=1)
