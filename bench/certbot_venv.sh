#!/usr/bin/env bash
# certbot in a virtual environment of its own (the peer to beat, TESTBED.md),
# installed once: bench/certbot_venv.sh [folder, default var/certbot-venv].
# With its DNS-01 plugins for the DNS-01 benchmark: RFC 2136 (BIND) and PowerDNS's
# HTTP API (a third-party plugin, the only certbot route to PowerDNS).
set -euo pipefail
venv="${1:-var/certbot-venv}"
if [[ -x "$venv/bin/certbot" ]] && "$venv/bin/certbot" plugins --text 2>/dev/null \
        | grep -q dns-rfc2136; then
    exit 0
fi
[[ -x "$venv/bin/python" ]] || python3 -m venv "$venv"
"$venv/bin/pip" install --quiet --upgrade pip
"$venv/bin/pip" install --quiet certbot certbot-dns-rfc2136
# Optional: an old plugin that may not install against today's certbot.
"$venv/bin/pip" install --quiet certbot-dns-powerdns \
    || echo "certbot-dns-powerdns could not be installed: the DNS-01 benchmark compares with certbot's RFC 2136 plugin on BIND"
"$venv/bin/certbot" --version
