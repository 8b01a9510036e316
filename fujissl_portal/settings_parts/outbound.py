"""The outbound policy (fujissl_portal/egress.py), checked at start-up."""

from django.core.exceptions import ImproperlyConfigured

from .environment import DEBUG, env

# Where the portal may connect on a tenant's behalf (fujissl_portal/egress.py):
# public addresses only, unless listed here as networks (10.1.0.0/16) or host:port
# pairs (ca.internal:443). Webhooks over plain http only to what is listed.
# Development (DEBUG) allows loopback, where the testbed's peers and a local CA run.
OUTBOUND_ALLOW = env.list("OUTBOUND_ALLOW",
                          default=["127.0.0.0/8", "::1/128"] if DEBUG else [])
try:
    from fujissl_portal.egress import parse_rules

    parse_rules(OUTBOUND_ALLOW)
except ValueError as _invalid:
    raise ImproperlyConfigured(str(_invalid)) from None
