"""Where every settings module reads from: the environment (django-environ),
a development checkout's ``.env``, the ``var/`` folder and ``DEBUG``; and
the secrets that production must set and development generates."""

from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parents[2]
env = environ.Env()
# A .env file is read only for convenience in development; the environment wins.
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

# Relative paths are taken from the project folder, wherever the command runs.
VAR_DIR = BASE_DIR / env("PORTAL_VAR_DIR", default="var")
VAR_DIR.mkdir(parents=True, exist_ok=True)

DEBUG = env.bool("DEBUG", default=False)


def _development_secret(filename, make):
    """A secret kept under var/ so that a development checkout needs no setup."""
    path = VAR_DIR / filename
    if not path.exists():
        path.write_text(make() + "\n")
        path.chmod(0o600)
    return path.read_text().strip()


def required_secret(name, *, make_development_value, hint=""):
    """Mandatory in production; generated once under var/ in development."""
    value = env(name, default="")
    if value:
        return value
    if DEBUG:
        return _development_secret(name.lower(), make_development_value)
    raise ImproperlyConfigured(
        f"{name} is not set. DEBUG is off, so it must come from the environment "
        f"(see README.md, 'Configuration').{hint}"
    )
