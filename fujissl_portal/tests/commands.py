"""manage.py in a process of its own, as production starts it or as a fresh clone
does: what the settings do at start-up shows only in a fresh interpreter."""

import os
import subprocess
import sys
from pathlib import Path

from cryptography.fernet import Fernet

ROOT = Path(__file__).resolve().parents[2]
PRODUCTION = {
    "DEBUG": "0",
    "SECRET_KEY": "k" * 10 + "Zq8-Lw3_Vn6pR1tY9uE4oI7aS2dF5gH0jK" + "m" * 20,
    "FIELD_ENCRYPTION_KEYS": Fernet.generate_key().decode(),
    "ALLOWED_HOSTS": "portal.example.test",
}


def manage(tmp_path, *args, **env):
    """manage.py with this environment but none of PRODUCTION's names, then ``env``
    (``**PRODUCTION`` for production)."""
    environment = {k: v for k, v in os.environ.items()
                   if k not in PRODUCTION and k != "DJANGO_SETTINGS_MODULE"}
    environment.update(PORTAL_VAR_DIR=str(tmp_path), **env)
    return subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=environment,
                          capture_output=True, text=True, timeout=120)


def bare(tmp_path, *args, **env):
    """manage.py in a checkout configured by nothing at all (as a fresh clone)."""
    environment = {k: v for k, v in os.environ.items()
                   if k not in ("DEBUG", "SECRET_KEY", "FIELD_ENCRYPTION_KEYS", "DATABASE_URL",
                                "REDIS_URL", "CELERY_BROKER_URL", "DJANGO_SETTINGS_MODULE")}
    environment.update(PORTAL_VAR_DIR=str(tmp_path), **env)
    return subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=environment,
                          capture_output=True, text=True, timeout=120)
