"""Waiting in a test for what real workers, beat or a host do in processes of
their own: a condition asked again until it holds, and the renewal runs such
tests wait for. A wait that runs out fails the test with the end of the logs
that can say why."""

import time
from pathlib import Path

import pytest

from certificates.models import RenewalRun


def wait_for(predicate, timeout, what, *logs, every=0.25):
    """``predicate()``'s first true value, asked every ``every`` seconds; after
    ``timeout`` seconds the test fails saying ``what`` did not happen, with the
    end of each of ``logs`` (a process with its ``log``, or a log file)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    tails = "\n".join(Path(getattr(log, "log", log)).read_text()[-4000:] for log in logs)
    pytest.fail(f"{what} did not happen within {timeout}s\n{tails}")


def run_of(cert):
    """The certificate's newest renewal run (None before its first)."""
    return RenewalRun.objects.filter(certificate=cert).order_by("-pk").first()


def finished(cert, after=0):
    """A condition: the certificate's newest run, newer than the run ``after``
    (its id), has ended."""
    def check():
        run = run_of(cert)
        return run is not None and run.pk > after and run.status not in RenewalRun.OPEN
    return check
