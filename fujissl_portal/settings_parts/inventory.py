"""The inventory: monitored endpoints and discovery scans."""

from .environment import env

# The inventory (certificates/inventory/): monitored endpoints and discovery.
# Served chains verify against certifi's roots (or this PEM file), plus an
# organisation's private CA roots from INVENTORY_EXTRA_ROOTS (a PEM file).
INVENTORY_TRUST_ROOTS = env.str("INVENTORY_TRUST_ROOTS", default="")
INVENTORY_EXTRA_ROOTS = env.str("INVENTORY_EXTRA_ROOTS", default="")
# Each monitored endpoint is checked this often; beat looks for due ones every
# ENDPOINT_SCAN_SECONDS and checks at most ENDPOINT_CHECKS_PER_SCAN of them,
# ENDPOINT_CHECK_CONCURRENCY at a time, each handshake bounded by the timeout.
ENDPOINT_CHECK_INTERVAL_SECONDS = env.int("ENDPOINT_CHECK_INTERVAL_SECONDS", default=6 * 3600)
ENDPOINT_SCAN_SECONDS = env.float("ENDPOINT_SCAN_SECONDS", default=60.0)
ENDPOINT_CHECKS_PER_SCAN = env.int("ENDPOINT_CHECKS_PER_SCAN", default=500)
ENDPOINT_CHECK_CONCURRENCY = env.int("ENDPOINT_CHECK_CONCURRENCY", default=16)
ENDPOINT_CHECK_TIMEOUT = env.float("ENDPOINT_CHECK_TIMEOUT", default=5)
# STARTTLS_CLIENT_NAME (the name given in SMTP's EHLO) is set in settings.py,
# from ALLOWED_HOSTS.
# Discovery scans: so that nobody scans what they should not, a scan covers at
# most DISCOVERY_MAX_ADDRESSES addresses (a /24) and only DISCOVERY_PORTS, every
# address also passing the outbound policy (OUTBOUND_ALLOW). The mail ports
# (25 and 587 SMTP, 143 IMAP, 110 POP3) are asked with STARTTLS.
DISCOVERY_MAX_ADDRESSES = env.int("DISCOVERY_MAX_ADDRESSES", default=256)
DISCOVERY_MAX_NAMES = env.int("DISCOVERY_MAX_NAMES", default=100)
DISCOVERY_PORTS = [int(p) for p in env.list(
    "DISCOVERY_PORTS", default=["443", "8443", "4443", "9443", "10443", "25", "587", "143", "110"])]
DISCOVERY_TIMEOUT = env.float("DISCOVERY_TIMEOUT", default=2)
DISCOVERY_CONCURRENCY = env.int("DISCOVERY_CONCURRENCY", default=64)
