"""What a CA's errors mean: the sorting of RFC 8555 problem documents into
transient and permanent, and their words for people."""

import datetime
import email.utils
from typing import Any

import requests
from acme import messages

from certificates.messages import message
from certificates.messages.ca_problems import (  # noqa: F401 - the seam's words, re-exported
    EAB_REFUSED,
    PROBLEM_WORDS,
    is_eab_problem,
)
from certificates.messages.ca_problems import describe as describe_problem  # noqa: F401
from certificates.seams.errors import FailureKind, PortalError

# An RFC 7807 problem document, as the CA sent it (subproblems included).
Problem = dict[str, Any]


# Retrying can help: the CA was busy or asked us to slow down.
TRANSIENT_CODES = {"serverInternal", "rateLimited", "badNonce"}


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


def problem_error(problem: Problem, *, transient: bool,
                  retry_after: datetime.datetime | None = None) -> AcmeError:
    """The CA's problem document as an error: kept whole, put into words when read."""
    return AcmeError(message("ca.problem", problem=problem), transient=transient,
                     problem=problem, retry_after=retry_after)


def words_error(code: str) -> AcmeError:
    """A failure with no problem document, said in the words of a problem type
    (a timeout, a nonce refused again and again, the network)."""
    return AcmeError(message("ca.problem_words", code=code), transient=True)


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
    # No detail of our own: the document is the CA's, and the words for its type
    # are put around it when read, in the reader's language.
    return {"type": first["type"], "subproblems": subproblems}
