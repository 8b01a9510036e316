"""A CA's problem document (RFC 7807, as RFC 8555 uses it) in words: ours for
its type, then the CA's own detail and subproblems as the CA sent them. The
document is stored whole, as it came; these words are put around it when read."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from django.utils.translation import gettext_lazy as _

Problem = dict[str, Any]

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

# Said when the CA's detail shows it refused the External Account Binding: CAs
# send it as unauthorized or malformed, whose own words (a challenge response, a
# malformed request) would send a person to look in the wrong place.
EAB_REFUSED = _("The CA refused the External Account Binding: check the EAB key ID "
                "and HMAC key of the CA account.")
SOME_PROBLEM = _("The CA reported a problem.")


def problem_code(problem: Problem | None) -> str:
    return str((problem or {}).get("type") or "").rsplit(":", 1)[-1]


def is_eab_problem(problem: Problem | None) -> bool:
    """Whether the CA's problem is about the External Account Binding."""
    if not problem:
        return False
    code = problem_code(problem)
    detail = str(problem.get("detail") or "").lower()
    return code == "externalAccountRequired" or (
        code in {"unauthorized", "malformed", "unauthorizedAccount"}
        and ("external account" in detail or re.search(r"\beab\b", detail) is not None))


def describe(problem: Problem | None) -> str:
    """The problem document in words, in the current language."""
    if not problem or not isinstance(problem, dict):
        return ""
    code = problem_code(problem)
    words = PROBLEM_WORDS.get(code, SOME_PROBLEM)
    if code != "externalAccountRequired" and is_eab_problem(problem):
        words = EAB_REFUSED
    parts = [str(words)]
    if problem.get("detail"):
        parts.append(str(problem["detail"]))
    for sub in problem.get("subproblems") or []:
        if not isinstance(sub, dict):
            continue
        name = (sub.get("identifier") or {}).get("value", "")
        parts.append(f"{name}: {sub.get('detail', '')}".strip(": "))
    return " ".join(parts)


def render_problem(params: dict[str, Any], value: Callable[[Any], Any]) -> str:
    """``ca.problem``: {"problem": the document as the CA sent it}."""
    return describe(params.get("problem"))


def render_words(params: dict[str, Any], value: Callable[[Any], Any]) -> str:
    """``ca.problem_words``: {"code": a problem type with no document (timeout...)}."""
    return str(PROBLEM_WORDS.get(str(params.get("code")), SOME_PROBLEM))
