"""The portal's one settings module.

Everything comes from the environment (django-environ); with nothing set the
portal runs on embedded defaults that need no server: SQLite and a file-system
Celery broker under ``var/``, e-mail printed to the console, and a development
encryption key generated under ``var/``.  With ``DEBUG`` off, a missing secret
stops start-up with a message naming it.
"""

import re
import secrets
from pathlib import Path

import environ
from cryptography.fernet import Fernet
from django.core.exceptions import ImproperlyConfigured
from django.utils.translation import gettext_lazy as _

BASE_DIR = Path(__file__).resolve().parent.parent
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

# Sign-in (accounts/signin.py, accounts/middleware.py). People are invited, never
# sign themselves up; they sign in with their user name, and a second factor
# (TOTP or a passkey, with recovery codes) is required of owners, administrators,
# staff and every member of an organisation that requires it.
ACCOUNT_ADAPTER = "accounts.signin.PortalAccountAdapter"
MFA_ADAPTER = "accounts.signin.PortalMFAAdapter"
ACCOUNT_LOGIN_METHODS = {"username"}
ACCOUNT_SIGNUP_FIELDS = ["username*", "email", "password1*", "password2*"]
ACCOUNT_EMAIL_VERIFICATION = "none"
ACCOUNT_LOGOUT_ON_PASSWORD_CHANGE = False
ACCOUNT_SESSION_REMEMBER = False
ACCOUNT_PASSWORD_RESET_BY_CODE_ENABLED = False
ACCOUNT_PREVENT_ENUMERATION = True
# A reset asked for an unknown address is answered like any other, but no mail
# goes to an address the portal does not know.
ACCOUNT_EMAIL_UNKNOWN_ACCOUNTS = False
MFA_SUPPORTED_TYPES = ["totp", "webauthn", "recovery_codes"]
MFA_PASSKEY_LOGIN_ENABLED = False
MFA_TOTP_ISSUER = env("MFA_TOTP_ISSUER", default="Certificate portal")
# Downloading a private key, creating a write token and changing a host's
# commands ask for the password again when the last sign-in or re-authentication
# is older than this.
REAUTHENTICATION_SECONDS = env.int("REAUTHENTICATION_SECONDS", default=10 * 60)
ACCOUNT_REAUTHENTICATION_TIMEOUT = REAUTHENTICATION_SECONDS
# Lockout: after LOGIN_FAILURES_PER_ACCOUNT wrong passwords for one user name, or
# LOGIN_FAILURES_PER_ADDRESS from one client address, within LOGIN_LOCKOUT_SECONDS,
# that name (or address) cannot sign in, even with the right password, until the
# oldest failure is that old. The counters live in the cache (CACHE_URL): with
# several web processes it must be a shared one. The Django admin signs in through
# the same form.
LOGIN_FAILURES_PER_ACCOUNT = env.int("LOGIN_FAILURES_PER_ACCOUNT", default=5)
LOGIN_FAILURES_PER_ADDRESS = env.int("LOGIN_FAILURES_PER_ADDRESS", default=20)
LOGIN_LOCKOUT_SECONDS = env.int("LOGIN_LOCKOUT_SECONDS", default=15 * 60)
ACCOUNT_RATE_LIMITS = {
    "login_failed": f"{LOGIN_FAILURES_PER_ADDRESS}/{LOGIN_LOCKOUT_SECONDS}s/ip,"
                    f"{LOGIN_FAILURES_PER_ACCOUNT}/{LOGIN_LOCKOUT_SECONDS}s/key",
    "reset_password": "20/m/ip,3/5m/key",
}
# Sessions end after SESSION_IDLE_SECONDS without a request, and in any case
# SESSION_MAX_SECONDS after sign-in (accounts.middleware.SessionLifetimeMiddleware).
SESSION_IDLE_SECONDS = env.int("SESSION_IDLE_SECONDS", default=8 * 60 * 60)
SESSION_MAX_SECONDS = env.int("SESSION_MAX_SECONDS", default=7 * 24 * 60 * 60)
SESSION_COOKIE_AGE = SESSION_MAX_SECONDS

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
# DNS-01 (certificates/dns01/, certificates/seams/dns*.py): the timeout of one DNS
# update, provider call or query, and how long every authoritative server of a
# zone has to serve a new TXT record.
DNS_UPDATE_TIMEOUT = env.float("DNS_UPDATE_TIMEOUT", default=10)
DNS_PROPAGATION_TIMEOUT = env.float("DNS_PROPAGATION_TIMEOUT", default=60)
# Where zones, name servers and CNAME chains are looked up ("host:port" each);
# empty: the system's resolvers. The TXT values themselves are asked of each
# authoritative server directly, on DNS_AUTHORITATIVE_PORT (53 but in tests).
DNS_RESOLVERS = env.list("DNS_RESOLVERS", default=[])
DNS_AUTHORITATIVE_PORT = env.int("DNS_AUTHORITATIVE_PORT", default=53)
# Target hosts (certificates/seams/ssh.py, certificates/hosts/).
SSH_CONNECT_TIMEOUT = env.float("SSH_CONNECT_TIMEOUT", default=10)
SSH_COMMAND_TIMEOUT = env.float("SSH_COMMAND_TIMEOUT", default=120)
# A login to a host is kept this long for the next session in the same worker
# process (0: log in every time), at most SSH_KEEP_PER_HOST idle ones per host.
SSH_KEEP_SECONDS = env.float("SSH_KEEP_SECONDS", default=30)
SSH_KEEP_PER_HOST = env.int("SSH_KEEP_PER_HOST", default=4)
TLS_CHECK_TIMEOUT = env.float("TLS_CHECK_TIMEOUT", default=5)
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
# The name the portal gives in SMTP's EHLO before STARTTLS (mail servers that
# check it want the portal's own public name).
STARTTLS_CLIENT_NAME = env.str("STARTTLS_CLIENT_NAME", default=ALLOWED_HOSTS[0])
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
CELERY_BEAT_SCHEDULE["check-endpoints"] = {
    "task": "certificates.check_endpoints", "schedule": ENDPOINT_SCAN_SECONDS,
    "options": {"expires": ENDPOINT_SCAN_SECONDS * 0.9}}
DEPLOY_TLS_GRACE_SECONDS = env.float("DEPLOY_TLS_GRACE_SECONDS", default=30)
DEPLOY_MAX_PARALLEL = env.int("DEPLOY_MAX_PARALLEL", default=4)
# When certificates bound for a host are still being issued, its next batch
# waits for them up to this long after its oldest request (0: never waits).
DEPLOY_BATCH_LINGER_SECONDS = env.float("DEPLOY_BATCH_LINGER_SECONDS", default=1.5)
# Agent hosts (certificates/agents/, docs/agent-protocol.md): an enrolment code is
# good this long; a check-in holds its answer up to AGENT_POLL_WAIT seconds while
# there is nothing to do; an agent is "silent" after this many missed intervals;
# a run waits at most AGENT_WAIT_MAX_SECONDS for an agent to write challenge
# files or send its CSR, and a deployment request of an agent host is answered
# as failed when nobody took it up within its wait budget.
AGENT_ENROLMENT_HOURS = env.int("AGENT_ENROLMENT_HOURS", default=24)
AGENT_POLL_WAIT = env.int("AGENT_POLL_WAIT", default=25)
AGENT_SILENT_INTERVALS = env.int("AGENT_SILENT_INTERVALS", default=3)
AGENT_WAIT_MAX_SECONDS = env.int("AGENT_WAIT_MAX_SECONDS", default=900)
AGENT_THROTTLE_RATE = env("AGENT_THROTTLE_RATE", default="240/min")
AGENT_ENROL_THROTTLE_RATE = env("AGENT_ENROL_THROTTLE_RATE", default="10/min")

REST_FRAMEWORK = {
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    # JSON nested at most 32 levels; the form parsers serve the browsable API's forms.
    "DEFAULT_PARSER_CLASSES": [
        "api.parsers.BoundedJSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
}
SPECTACULAR_SETTINGS = {"TITLE": "Certificate portal API", "VERSION": "1"}

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

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env("LOG_LEVEL", default="INFO")},
    # paramiko logs every packet at DEBUG; keep it quiet unless asked.
    "loggers": {"paramiko": {"level": "WARNING"}},
}

# The REST API (api/): /metrics is open to a bearer METRICS_TOKEN or to the
# addresses (or networks) in METRICS_ALLOWED_IPS; with neither set it is closed.
# No loopback default: behind a reverse proxy every request comes from 127.0.0.1.
METRICS_TOKEN = env("METRICS_TOKEN", default="")
METRICS_ALLOWED_IPS = env.list("METRICS_ALLOWED_IPS", default=[])
API_THROTTLE_RATE = env("API_THROTTLE_RATE", default="600/min")
if not re.fullmatch(r"[1-9]\d*/(s|sec|m|min|h|hour|d|day)", API_THROTTLE_RATE):
    raise ImproperlyConfigured(
        f"API_THROTTLE_RATE={API_THROTTLE_RATE!r}: write requests per period, e.g. 600/min "
        "(periods: sec, min, hour, day).")
SPECTACULAR_SETTINGS.update({
    "SWAGGER_UI_DIST": "SIDECAR", "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    # Swagger UI would send the schema to validator.swagger.io for its badge.
    "SWAGGER_UI_SETTINGS": {"deepLinking": True, "validatorUrl": None},
    "SERVE_INCLUDE_SCHEMA": False, "COMPONENT_SPLIT_REQUEST": True,
    "ENUM_NAME_OVERRIDES": {
        "RunStatusEnum": "certificates.models.runs.RenewalRun.Status",
        "StepStatusEnum": "certificates.steps.StepStatus",
        "StepNameEnum": "certificates.steps.Step",
        "OrderStatusEnum": "certificates.models.orders.Order.Status",
        "DeploymentStatusEnum": "certificates.models.hosts.Deployment.Status",
        "WebhookEventEnum": "api.models.Event",
    },
    "DESCRIPTION": "Certificates, hosts, deployments, renewal runs, CA accounts and orders "
                   "of the organisations you belong to.",
})
# Failed webhook deliveries are retried from the database (backoff in next_attempt_at).
CELERY_BEAT_SCHEDULE["webhook-retries"] = {"task": "api.retry_webhooks", "schedule": 60.0,
                                           "options": {"expires": 50}}
