"""Every failure of certbot's acme library, of the network and of the outbound
policy while talking to a CA, as an ``AcmeError`` that says whether retrying
can help, with the CA's problem document and its Retry-After."""

from __future__ import annotations

import datetime
import logging
from collections.abc import Iterator
from contextlib import contextmanager

import requests
from acme import errors, messages
from django.utils import timezone

from certificates.messages import message
from certificates.seams.acme_problems import (
    TRANSIENT_CODES,
    AcmeError,
    problem_dict,
    problem_error,
    retry_after_seconds,
    validation_problem,
    words_error,
)
from certificates.seams.acme_protocol import Network
from fujissl_portal import egress

# Logged as the ACME seam, of which this module is a part.
logger = logging.getLogger("certificates.seams.acme")


@contextmanager
def errors_of(network: Network) -> Iterator[None]:
    """Every error of the library, the network or the policy as an AcmeError."""
    try:
        yield
    except AcmeError:
        raise
    except messages.Error as exc:
        raise _from_problem(network, exc) from exc
    except errors.IssuanceError as exc:
        raise _from_problem(network, exc.error) from exc
    except errors.ValidationError as exc:
        raise problem_error(validation_problem(exc.failed_authzrs), transient=False) from exc
    except (errors.TimeoutError, errors.NonceError) as exc:
        code = "timeout" if isinstance(exc, errors.TimeoutError) else "badNonce"
        raise words_error(code) from exc
    except errors.ClientError as exc:
        response = exc.args[0] if exc.args and hasattr(exc.args[0], "status_code") else None
        status = getattr(response, "status_code", 0)
        raise AcmeError(message("ca.http_status", status=status),
                        transient=status >= 500 or status == 0,
                        retry_after=_retry_after(network)) from exc
    except (egress.Refused, egress.ResponseTooLarge) as exc:
        raise AcmeError(message("ca.check_directory", error=exc), transient=False,
                        kind=exc.kind) from exc
    except requests.RequestException as exc:
        # Refused, timed out or dropped: one message, so that a directory URL
        # cannot probe what listens on which port; the log has the detail.
        logger.info("ACME request failed: %r", exc)
        raise words_error("network") from exc


def _from_problem(network: Network, error: messages.Error) -> AcmeError:
    problem = problem_dict(error)
    status = getattr(network.last_response, "status_code", 0)
    transient = error.code in TRANSIENT_CODES or status >= 500
    return problem_error(problem, transient=transient,
                         retry_after=_retry_after(network) if transient else None)


def _retry_after(network: Network) -> datetime.datetime | None:
    response = network.last_response
    seconds = retry_after_seconds(response) if response is not None else None
    return timezone.now() + datetime.timedelta(seconds=seconds) if seconds is not None else None
