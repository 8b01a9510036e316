"""What DNS already shows about a certificate's names before any CA is asked:
a name that does not resolve, and CAA records (RFC 8659) that do not let the
CA account's CA issue for it. Said as warnings when the certificate is saved,
which a person may confirm past (DNS may be about to change); without them the
first renewal failed a day later, in the background.

A warning is said at once, in the language of the person saving, and never
stored.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.utils.translation import gettext as _

from certificates.dns01.writers import lookup
from certificates.models import Certificate
from certificates.models.certificate import Challenge
from certificates.seams import dns_caa
from certificates.seams.dns_lookup import LookupError

# All the lookups of one save together: a slow resolver must not hold it long.
CHECK_SECONDS = 8.0
# What a change must touch for the names to be checked again.
CHECKED_FIELDS = ("common_name", "sans", "ca_account", "challenge")


@dataclass(frozen=True)
class NameWarning:
    code: str  # "not_resolving", "caa_forbids", "caa_unknown_ca" or "lookup_failed"
    name: str
    message: str


def warnings_for(certificate: Certificate) -> list[NameWarning]:
    """The warnings about `certificate`'s names (saved or not), in the active language."""
    deadline = dns_caa.Deadline(CHECK_SECONDS)
    where = lookup()
    warnings: list[NameWarning] = []
    for name in certificate.names():
        wildcard = name.startswith("*.")
        base = name.removeprefix("*.")
        try:
            # A wildcard's own name is never looked up; its base need not resolve.
            if not wildcard and not dns_caa.resolves(where, name, deadline):
                warnings.append(_not_resolving(certificate, name))
            records = dns_caa.relevant_caa(where, base, deadline)
        except LookupError as exc:
            warnings.append(NameWarning("lookup_failed", name, _(
                "%(name)s could not be checked in DNS: %(error)s") % {
                    "name": name, "error": exc}))
            continue
        warning = _caa_warning(certificate, name, records, wildcard=wildcard)
        if warning is not None:
            warnings.append(warning)
    return warnings


def _not_resolving(certificate: Certificate, name: str) -> NameWarning:
    message = _("%(name)s does not resolve: DNS has no address (A or AAAA record) for it.") % {
        "name": name}
    if certificate.challenge == Challenge.HTTP_01:
        message += " " + _("The CA cannot reach it for the HTTP-01 challenge until it does.")
    return NameWarning("not_resolving", name, message)


def _caa_warning(certificate: Certificate, name: str, records: list[dns_caa.CAA], *,
                 wildcard: bool) -> NameWarning | None:
    account = certificate.ca_account
    identities = list(account.caa_identities or [])
    if dns_caa.permits(records, identities, wildcard=wildcard):
        return None
    allowed = sorted(dns_caa.allowed_issuers(records, wildcard=wildcard) or ())
    if not allowed:
        return NameWarning("caa_forbids", name, _(
            "The CAA records of %(name)s allow no CA to issue for it: the CA will refuse.")
            % {"name": name})
    if not identities:
        return NameWarning("caa_unknown_ca", name, _(
            "The CAA records of %(name)s allow only %(allowed)s, and the CA of %(account)s "
            "does not say which name it goes by in CAA records: check that it is one of "
            "them, or the CA will refuse.") % {
                "name": name, "allowed": ", ".join(allowed), "account": account.name})
    return NameWarning("caa_forbids", name, _(
        "The CAA records of %(name)s allow only %(allowed)s, not the CA of %(account)s "
        "(%(ca)s): the CA will refuse to issue until they allow it.") % {
            "name": name, "allowed": ", ".join(allowed), "account": account.name,
            "ca": ", ".join(identities)})
