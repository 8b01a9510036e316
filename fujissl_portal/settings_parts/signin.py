"""Signing in (accounts/signin.py, accounts/middleware.py): allauth's account
and MFA, re-authentication, lockout and session lifetimes."""

from .environment import env

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
