#!/usr/bin/env bash
# certbot in a virtual environment of its own (the peer to beat, TESTBED.md),
# installed once: bench/certbot_venv.sh [folder, default var/certbot-venv]
set -euo pipefail
venv="${1:-var/certbot-venv}"
if [[ -x "$venv/bin/certbot" ]]; then
    exit 0
fi
python3 -m venv "$venv"
"$venv/bin/pip" install --quiet --upgrade pip
"$venv/bin/pip" install --quiet certbot
"$venv/bin/certbot" --version
