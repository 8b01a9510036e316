#!/usr/bin/env python
"""Django's command-line utility for the portal."""

import os
import sys
from pathlib import Path

# Any of these (or a .env file) means the portal has been configured; the
# development defaults below then never apply.
CONFIGURATION = ("DEBUG", "SECRET_KEY", "FIELD_ENCRYPTION_KEYS", "DATABASE_URL")


def main():
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "fujissl_portal.settings")
    if not any(name in os.environ for name in CONFIGURATION) and not (
            Path(__file__).resolve().parent / ".env").exists():
        # A checkout with no configuration at all: the embedded development
        # defaults (SQLite and secrets under var/), so that `manage.py
        # makemigrations` and friends work at once. Production always sets
        # DATABASE_URL, and the web server and workers do not start here.
        os.environ["DEBUG"] = "1"
        print("manage.py: no configuration found, so the development defaults apply "
              "(DEBUG on, SQLite and secrets under var/); see README.md, 'Configuration'.",
              file=sys.stderr)
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
