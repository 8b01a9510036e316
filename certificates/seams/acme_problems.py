"""What a CA's errors mean: the sorting of RFC 8555 problem documents into
transient and permanent, and their words for people."""

import datetime
import email.utils
import re
from typing import Any

import requests
from acme import messages
from django.utils.translation import gettext_lazy as _

from certificates.seams.errors import FailureKind, PortalError

# An RFC 7807 problem document, as the CA sent it (subproblems included).
Problem = dict[str, Any]


# Retrying can help: the CA was busy or asked us to slow down.
TRANSIENT_CODES = {"serverInternal", "rateLimited", "badNonce"}


# Problem types in words for people (the CA's own detail follows them).
PROBLEM_WORDS = {
    "unauthorized": _("The CA could not confirm control of the name: the challenge "
                      "response was missing or wrong."),
    "incorrectResponse": _("The challenge response the CA found was not the expected one."),
    "connection": _("The CA could not connect to the server to check the challenge."),
    "dns": _("The CA's DNS lookup for the name failed."),
    "tls": _("A TLS error occurred while the CA checked the challenge."),
    "caa": _("The domain's CAA records forbid this CA from issuing for it."),
    "rejectedIdentifier": _("The CA will not issue certificates for this name."),
    "badCSR": _("The CA refused the certificate request (CSR)."),
    "rateLimited": _("The CA's rate limit was reached; the portal retries later."),
    "serverInternal": _("The CA had an internal error; the portal retries later."),
    "badNonce": _("The CA kept refusing the request's anti-replay nonce; the portal "
                  "retries later."),
    "externalAccountRequired": _("The CA requires External Account Binding: enter the EAB "
                                 "key ID and HMAC key of the CA account."),
    "unauthorizedAccount": _("The CA refused the account."),
    "accountDoesNotExist": _("The CA does not know the account."),
    "malformed": _("The CA found the request malformed."),
    "timeout": _("The CA did not finish in time; the portal retries later."),
    "network": _("The CA could not be reached; the portal retries later."),
}


class AcmeError(PortalError):
    """A failure talking to the CA, sorted for the retry policy; ``retry_after``
    is when the CA asked us to come back (rateLimited, 503), if it said."""

    kind = FailureKind.CA_ERROR

    def __init__(self, message: object, *, transient: bool,
                 problem: Problem | None = None,
                 retry_after: datetime.datetime | None = None,
                 kind: FailureKind | None = None) -> None:
        # transient is required here: every failure at the CA must be sorted.
        super().__init__(message, transient=transient, problem=problem,
                         retry_after=retry_after, kind=kind)


# Said when the CA's detail shows it refused the External Account Binding: CAs
# send it as unauthorized or malformed, whose own words (a challenge response, a
# malformed request) would send a person to look in the wrong place.
EAB_REFUSED = _("The CA refused the External Account Binding: check the EAB key ID "
                "and HMAC key of the CA account.")


def is_eab_problem(problem: Problem | None) -> bool:
    """Whether the CA's problem is about the External Account Binding."""
    if not problem:
        return False
    code = problem.get("type", "").rsplit(":", 1)[-1]
    detail = (problem.get("detail") or "").lower()
    return code == "externalAccountRequired" or (
        code in {"unauthorized", "malformed", "unauthorizedAccount"}
        and ("external account" in detail or re.search(r"\beab\b", detail) is not None))


def describe_problem(problem: Problem | None) -> str:
    """The problem document in words: ours for its type, then the CA's detail."""
    if not problem:
        return ""
    code = problem.get("type", "").rsplit(":", 1)[-1]
    words = PROBLEM_WORDS.get(code, _("The CA reported a problem."))
    if code != "externalAccountRequired" and is_eab_problem(problem):
        words = EAB_REFUSED
    parts = [str(words)]
    if problem.get("detail"):
        parts.append(problem["detail"])
    for sub in problem.get("subproblems") or []:
        name = (sub.get("identifier") or {}).get("value", "")
        parts.append(f"{name}: {sub.get('detail', '')}".strip(": "))
    return " ".join(parts)


def retry_after_seconds(response: requests.Response) -> float | None:
    """Retry-After (seconds or an HTTP date) as seconds from now, or None.

    Parsed here because the library mixes naive local and naive UTC times.
    """
    value = response.headers.get("Retry-After", "").strip()
    if not value:
        return None
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=datetime.UTC)
    return max((when - datetime.datetime.now(datetime.UTC)).total_seconds(), 0.0)


def problem_dict(error: messages.Error) -> Problem:
    problem: Problem = {"type": error.typ, "detail": error.detail or ""}
    if error.identifier is not None:
        problem["identifier"] = {"type": error.identifier.typ.name,
                                 "value": error.identifier.value}
    if error.subproblems:
        problem["subproblems"] = [problem_dict(sub) for sub in error.subproblems]
    return problem


def validation_problem(failed_authzrs: list[messages.AuthorizationResource]) -> Problem:
    """One problem document for failed validations, a subproblem per name."""
    subproblems = []
    for authzr in failed_authzrs:
        for chall in authzr.body.challenges:
            if chall.error is not None:
                sub = problem_dict(chall.error)
                sub["identifier"] = {"type": "dns", "value": authzr.body.identifier.value}
                subproblems.append(sub)
    first = subproblems[0] if subproblems else {"type": messages.ERROR_PREFIX + "unauthorized"}
    return {"type": first["type"], "detail": str(_("Validation failed.")),
            "subproblems": subproblems}
