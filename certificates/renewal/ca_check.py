"""Whether a CA account's settings reach an ACME CA that accepts them, said in
words a person can act on: when the settings are saved, and on request. Without
it a typo in the directory URL showed only as a failed renewal, later, in the
background."""

from dataclasses import dataclass

from django.conf import settings
from django.utils import timezone
from django.utils.translation import gettext as _

from certificates.models import CAAccount
from certificates.seams import acme
from certificates.seams.acme_problems import is_eab_problem
from certificates.seams.errors import PortalError

# What every ACME directory has (RFC 8555, 7.1.1).
REQUIRED_RESOURCES = ("newNonce", "newAccount", "newOrder")
# The settings the check reads: a change to any other field needs no check.
CONNECTION_FIELDS = ("directory_url", "contact_email", "eab_kid", "eab_hmac_key")
# What a check writes on the account besides its registration.
CHECKED_FIELDS = ("profiles", "profiles_checked_at", "caa_identities")


@dataclass(frozen=True)
class Problem:
    field: str  # the form field at fault
    message: str


def check(ca_account: CAAccount) -> list[Problem]:
    """The problems of `ca_account`'s settings; none when the CA answers and
    accepts them.

    When the account has an EAB key or the CA requires one, the account is
    registered (that is the only way to know the CA takes the key); its key and
    URL are then set on `ca_account`, for the caller to save with it.
    """
    key_pem = ca_account.account_key or acme.new_account_key()
    try:
        ca = acme.CA.connect(
            directory_url=ca_account.directory_url, account_key_pem=key_pem,
            contact_email=ca_account.contact_email, eab_kid=ca_account.eab_kid,
            eab_hmac_key=ca_account.eab_hmac_key, verify=settings.ACME_CA_BUNDLE or True,
            timeout=settings.ACME_HTTP_TIMEOUT)
    except PortalError as exc:
        return [Problem("directory_url", _("The CA's directory could not be fetched: "
                                           "%(error)s") % {"error": exc})]
    missing = [name for name in REQUIRED_RESOURCES if name not in ca.directory_resources]
    if missing:
        return [Problem("directory_url", _(
            "The directory URL does not answer with an ACME directory (it lacks %(names)s).")
            % {"names": ", ".join(missing)})]
    # Read at every save and test, so that the choice offered for certificates
    # follows what the CA lists now.
    ca_account.profiles, ca_account.profiles_checked_at = ca.profiles, timezone.now()
    ca_account.caa_identities = ca.caa_identities
    has_eab = bool(ca_account.eab_kid and ca_account.eab_hmac_key)
    if ca.requires_eab and not has_eab:
        return [Problem("eab_kid", _("The CA requires External Account Binding: enter the "
                                     "EAB key ID and HMAC key the CA gave you."))]
    if not has_eab:
        return []
    return _register(ca_account, ca, key_pem)


def _register(ca_account: CAAccount, ca: acme.CA, key_pem: str) -> list[Problem]:
    try:
        ca.register()
    except PortalError as exc:
        if not is_eab_problem(exc.problem):
            return [Problem("directory_url", _("The CA refused to register the account: "
                                               "%(error)s") % {"error": exc})]
        detail = ((exc.problem or {}).get("detail") or "").lower()
        # A key ID the CA does not know is the ID's fault; anything else the HMAC's.
        field = "eab_kid" if "kid" in detail or "key id" in detail else "eab_hmac_key"
        return [Problem(field, str(exc))]
    ca_account.account_key = key_pem
    ca_account.account_url = ca.account_url
    return []


def check_stored(ca_account: CAAccount) -> list[Problem]:
    """`check` for a stored account (a person's "test"), keeping the account a
    registration made."""
    problems = check(ca_account)
    if not problems and ca_account.account_url:
        CAAccount.objects.filter(pk=ca_account.pk).update(
            account_key=ca_account.account_key, account_url=ca_account.account_url)
    if ca_account.profiles_checked_at is not None:
        CAAccount.objects.filter(pk=ca_account.pk).update(
            profiles=ca_account.profiles, profiles_checked_at=ca_account.profiles_checked_at,
            caa_identities=ca_account.caa_identities)
    return problems
