"""Talking to CAs over ACME, and moving a certificate to its fallback CA."""

from django.core.exceptions import ImproperlyConfigured

from .environment import env

# Talking to CAs (certificates/seams/acme.py). ACME_CA_BUNDLE adds trust for a private
# CA's own HTTPS listener (step-ca, Pebble in tests); empty means the system store.
ACME_CA_BUNDLE = env("ACME_CA_BUNDLE", default="")
ACME_HTTP_TIMEOUT = env.float("ACME_HTTP_TIMEOUT", default=30)
ACME_VALIDATION_TIMEOUT = env.float("ACME_VALIDATION_TIMEOUT", default=180)
# A certificate with a fallback CA account moves there after this many renewal
# runs in a row failed at its CA transiently (unreachable, internal errors); a
# permanent refusal by the CA moves it at once (certificates/renewal/fallback.py).
CA_FALLBACK_AFTER_FAILURES = env.int("CA_FALLBACK_AFTER_FAILURES", default=3)
if CA_FALLBACK_AFTER_FAILURES < 1:
    raise ImproperlyConfigured("CA_FALLBACK_AFTER_FAILURES must be at least 1.")
