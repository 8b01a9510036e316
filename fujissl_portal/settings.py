"""The portal's settings module.

Everything comes from the environment (django-environ); with nothing set the
portal runs on embedded defaults that need no server: SQLite and a file-system
Celery broker under ``var/``, e-mail printed to the console, and a development
encryption key generated under ``var/``.  With ``DEBUG`` off, a missing secret
stops start-up with a message naming it.

The settings of the portal's peers and features are in ``settings_parts/``,
each imported below by name.
"""

import secrets

from cryptography.fernet import Fernet
from django.utils.translation import gettext_lazy as _

from .settings_parts.environment import BASE_DIR, DEBUG, VAR_DIR, env, required_secret

SECRET_KEY = required_secret(
    "SECRET_KEY", make_development_value=lambda: secrets.token_urlsafe(50)
)
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "csp",
    "fujissl_portal",
    "accounts",
    "certificates",
    "api",
    # Sign-in: allauth's account (login, re-authentication, password reset, rate
    # limits) and MFA (TOTP, WebAuthn/passkeys, recovery codes). After the portal's
    # apps, so that templates/ and the portal's own app templates win.
    "allauth",
    "allauth.account",
    "allauth.mfa",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # Before everything meant for people: the agents' requests end here.
    "fujissl_portal.middleware.AgentEndpoints",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "accounts.middleware.SessionLifetimeMiddleware",
    "allauth.account.middleware.AccountMiddleware",
    "fujissl_portal.middleware.NoStoreForSignedIn",
    "accounts.middleware.UserLanguageMiddleware",
    "accounts.middleware.MFARequiredMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "csp.middleware.CSPMiddleware",
]

ROOT_URLCONF = "fujissl_portal.urls"
WSGI_APPLICATION = "fujissl_portal.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "django.template.context_processors.i18n",
                "accounts.context_processors.organizations",
            ],
        },
    },
]

# Database: SQLite under var/ by default; PostgreSQL in production via DATABASE_URL.
DATABASES = {
    "default": env.db("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'portal.sqlite3'}")
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # A file, not memory, for the test database too: tests start real Celery
    # workers in other processes, and they must see the same rows.
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / "test-portal.sqlite3")}
    # The web server, the worker and beat share one file: WAL lets readers
    # proceed during a write, IMMEDIATE takes the write lock at BEGIN so that
    # two writers queue on the busy timeout instead of failing mid-transaction.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            "transaction_mode": "IMMEDIATE",
            "timeout": 20,
        }
    )
else:
    DATABASES["default"]["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=60)
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_USER_MODEL = "accounts.User"
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "certificates:dashboard"
LOGOUT_REDIRECT_URL = "login"
AUTHENTICATION_BACKENDS = [
    "django.contrib.auth.backends.ModelBackend",
    "allauth.account.auth_backends.AuthenticationBackend",
]

# Language and time: the UI speaks Japanese and English; times are Tokyo's by default.
LANGUAGE_CODE = env("LANGUAGE_CODE", default="ja")
LANGUAGES = [("ja", _("Japanese")), ("en", _("English"))]
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = env("TIME_ZONE", default="Asia/Tokyo")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
# `manage.py collectstatic` fills this; whitenoise serves it. Created here so
# that whitenoise does not warn on a checkout that has not collected yet.
STATIC_ROOT = VAR_DIR / env("STATIC_ROOT", default="static")
STATIC_ROOT.mkdir(parents=True, exist_ok=True)
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "django.contrib.staticfiles.storage.StaticFilesStorage"
            if DEBUG
            else "whitenoise.storage.CompressedManifestStaticFilesStorage"
        )
    },
}

# Secrets at rest: a comma-separated list of Fernet keys, newest first. The first
# encrypts; all decrypt, so a key can be rotated (see `manage.py rotate_secrets`).
FIELD_ENCRYPTION_KEYS = required_secret(
    "FIELD_ENCRYPTION_KEYS",
    make_development_value=lambda: Fernet.generate_key().decode(),
    hint=" Generate a key with: python -c 'from cryptography.fernet import Fernet; "
    "print(Fernet.generate_key().decode())'",
).split(",")

# E-mail: printed to the console unless EMAIL_URL names an SMTP server.
EMAIL_CONFIG = env.email_url("EMAIL_URL", default="consolemail://")
vars().update(EMAIL_CONFIG)
# Django waits forever on an SMTP server that does not answer; a worker must not.
EMAIL_TIMEOUT = env.int("EMAIL_TIMEOUT", default=30)
DEFAULT_FROM_EMAIL = env("DEFAULT_FROM_EMAIL", default="portal@localhost")
SERVER_EMAIL = DEFAULT_FROM_EMAIL
PORTAL_BASE_URL = env("PORTAL_BASE_URL", default="http://127.0.0.1:8000")
# An invitation link works for this many days, then a new one must be sent.
INVITATION_DAYS = env.int("INVITATION_DAYS", default=7)

# Celery: Redis in production; with nothing configured, a file-system broker under
# var/ so that `make run` needs no server at all.
REDIS_URL = env("REDIS_URL", default="")
CELERY_BROKER_URL = env("CELERY_BROKER_URL", default=REDIS_URL or "filesystem://")
CELERY_BROKER_TRANSPORT_OPTIONS = {}
if CELERY_BROKER_URL == "filesystem://":
    _broker_dir = VAR_DIR / "celery-broker"
    (_broker_dir / "processed").mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir),
        "data_folder_out": str(_broker_dir),
        "processed_folder": str(_broker_dir / "processed"),
        # Broadcast (remote control) messages; kombu's default is ./control.
        "control_folder": str(_broker_dir / "control"),
        "store_processed": False,
    }
else:
    # Longer than the longest task's hard time limit, or Redis would hand a
    # running task to a second worker.
    CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 2 * 60 * 60}
# The cache holds API throttling counters. Per process by default; with several
# web processes set CACHE_URL (e.g. redis://127.0.0.1:6379/1) so that they all
# count the same token. A Redis database of its own: clearing a cache empties it.
CACHES = {"default": env.cache_url("CACHE_URL", default="locmemcache://")}
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
# Outcomes are recorded as rows (renewal runs, notifications), not as Celery results.
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TIMEZONE = TIME_ZONE
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")
# How often beat looks for due renewals (an indexed query; cheap).
RENEWAL_SCAN_SECONDS = env.float("RENEWAL_SCAN_SECONDS", default=60.0)
# After the portal starts, the dashboard waits this long before it says that no
# worker runs the scheduler: a worker started at the same time needs its
# start-up and the next heartbeat (every minute) to report, and the last beat
# recorded before a restart is old by then.
SCHEDULER_STARTUP_GRACE_SECONDS = env.float("SCHEDULER_STARTUP_GRACE_SECONDS", default=180.0)
CELERY_BEAT_SCHEDULE = {
    # `expires` on every entry: a backlog (workers down for an hour) must not
    # replay sixty stale copies when they come back.
    "heartbeat": {"task": "certificates.heartbeat", "schedule": 60.0, "options": {"expires": 50}},
    "scan-due-renewals": {"task": "certificates.scan", "schedule": RENEWAL_SCAN_SECONDS,
                          "options": {"expires": RENEWAL_SCAN_SECONDS * 0.9}},
    # As often as the scan: a run whose worker died must be taken up well inside
    # the renewal margin of a short-lived certificate.
    "recover-stale-runs": {"task": "certificates.recover", "schedule": RENEWAL_SCAN_SECONDS,
                           "options": {"expires": RENEWAL_SCAN_SECONDS * 0.9}},
    "alert-checks": {"task": "certificates.checks", "schedule": 15 * 60.0,
                     "options": {"expires": 14 * 60}},
    # Stuck runs and expired certificates still served: a person is told within a minute.
    "watch-runs-and-expiry": {"task": "certificates.watch", "schedule": 60.0,
                              "options": {"expires": 50}},
    # Alert mails the SMTP server refused, sent again (backoff in next_attempt_at).
    "retry-mail": {"task": "certificates.retry_mail", "schedule": 60.0,
                   "options": {"expires": 50}},
}
# ACME work and deployments on queues of their own, so each can get its workers:
#   celery -A fujissl_portal worker -Q celery,acme     (scans, issuance)
#   celery -A fujissl_portal worker -Q deploy          (SSH deployments)
CELERY_TASK_DEFAULT_QUEUE = "celery"
CELERY_TASK_ROUTES = {
    "certificates.renew": {"queue": "acme"},
    "certificates.deploy_run": {"queue": "deploy"},
    "certificates.deploy_now": {"queue": "deploy"},
    # Revoking an incident's old version talks to the CA.
    "certificates.incident_item_replaced": {"queue": "acme"},
    # Concluding a run (alerts, e-mail, webhooks) needs no host: the default queue.
}
CELERY_WORKER_QUEUES = "celery,acme,deploy"  # what `make run`'s single worker serves
# An incident's runs go before routine ones: on Redis a worker takes the
# messages of a lower priority number first, from every queue it serves
# (kombu's priority lists), so routine tasks get a lower one by default. The
# file-system broker of development ignores priorities.
CELERY_TASK_DEFAULT_PRIORITY = 6
INCIDENT_TASK_PRIORITY = 0
# A running or deploying run is held for this long, and its worker renews the
# hold every third of it while it lives (certificates/renewal/lifecycle.py): a run whose
# worker was killed is taken up again about this long after, plus at most a
# minute for the recovery pass.
RENEWAL_LEASE_SECONDS = env.int("RENEWAL_LEASE_SECONDS", default=90)
# A queued run whose message no worker took within this long is enqueued again
# (the message was lost). Longer than the lease: a backlog of queued runs is
# normal after an outage, and re-enqueueing them all each minute would only add
# to it.
RENEWAL_QUEUE_SECONDS = env.int("RENEWAL_QUEUE_SECONDS", default=15 * 60)
# Both leases are also bounded by a tenth of the certificate's validity left
# (certificates/renewal/policy.py), and each backoff step by a quarter of it;
# near or past expiry a failing renewal is retried this often.
RENEWAL_RETRY_MIN_SECONDS = env.int("RENEWAL_RETRY_MIN_SECONDS", default=60)
# Renewals a person may start per organisation in 24 hours on priced CA accounts
# (automatic ones count too, but are never refused): a runaway script or a
# stolen token cannot spend the deposit in a day.
PAID_ISSUANCES_PER_DAY = env.int("PAID_ISSUANCES_PER_DAY", default=100)
# "Expiring" alerts for certificates this close to expiry with no successful renewal.
EXPIRY_WARNING_DAYS = env.int("EXPIRY_WARNING_DAYS", default=14)


# The settings of the portal's peers and features: one plain module each in
# settings_parts/, reading the same environment (settings_parts/environment.py),
# so that each feature's settings read as one piece and this file stays short.
# They are named here one by one, not found by a loop over the package, so that
# this file says what the settings are made of; and here, after the settings
# above, so that start-up checks the values in the order it always has (a wrong
# one stops it, naming it). A star import takes each module's upper-case names,
# the only ones Django reads (pyproject.toml allows the star and the place).
# isort: off
from .settings_parts.signin import *
from .settings_parts.outbound import *
from .settings_parts.ca import *
from .settings_parts.dns import *
from .settings_parts.hosts import *
from .settings_parts.inventory import *
from .settings_parts.inventory import ENDPOINT_SCAN_SECONDS
from .settings_parts.agents import *
from .settings_parts.security import *
from .settings_parts.api import *
# isort: on

# The name the portal gives in SMTP's EHLO before STARTTLS (mail servers that
# check it want the portal's own public name): the first of ALLOWED_HOSTS.
STARTTLS_CLIENT_NAME = env.str("STARTTLS_CLIENT_NAME", default=ALLOWED_HOSTS[0])

CELERY_BEAT_SCHEDULE["check-endpoints"] = {
    "task": "certificates.check_endpoints", "schedule": ENDPOINT_SCAN_SECONDS,
    "options": {"expires": ENDPOINT_SCAN_SECONDS * 0.9}}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env("LOG_LEVEL", default="INFO")},
    # paramiko logs every packet at DEBUG; keep it quiet unless asked.
    "loggers": {"paramiko": {"level": "WARNING"}},
}
# Failed webhook deliveries are retried from the database (backoff in next_attempt_at).
CELERY_BEAT_SCHEDULE["webhook-retries"] = {"task": "api.retry_webhooks", "schedule": 60.0,
                                           "options": {"expires": 50}}
