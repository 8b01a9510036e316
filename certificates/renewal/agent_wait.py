"""What an issuance waits for from agent hosts: HTTP-01 challenge files written
by the agent, and the certificate request of a key made on the server.

The agent acts at its next check-in: within seconds for a long-polling
`serve`, within one interval for cron. The run waits that long (its lease is
kept by the worker meanwhile, lifecycle.keep_lease) and then fails as a
transient error that names the host and its last check-in, so that the
backoff tries again.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from django.conf import settings
from django.utils import timezone

from certificates.messages import message
from certificates.models import AgentChallenge, AgentState, Certificate, RenewalRun, TargetHost
from certificates.seams.errors import FailureKind, PortalError
from certificates.steps import Step, StepStatus

POLL_SECONDS = 0.25


class AgentTooSlow(PortalError):
    kind = FailureKind.AGENT_SILENT
    transient = True


def budget(host: TargetHost) -> float:
    state = AgentState.objects.filter(host=host).first()
    return state.wait_budget() if state else float(settings.AGENT_WAIT_MAX_SECONDS)


def _last_seen(host: TargetHost) -> object:
    seen = AgentState.objects.filter(host=host).values_list("last_seen", flat=True).first()
    return seen if seen else message("never")


def _until(done: Callable[[], bool], seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while not done():
        if time.monotonic() >= deadline:
            return False
        time.sleep(POLL_SECONDS)
    return True


def server_csr(run: RenewalRun, certificate: Certificate) -> str:
    """The CSR the agent of the certificate's host sent for its next key."""
    host = certificate.hosts.get()  # one agent host: Certificate.clean holds it so

    def pending() -> str:
        return Certificate.objects.filter(pk=certificate.pk).values_list(
            "pending_csr", flat=True).get()

    if not _until(lambda: bool(pending()), budget(host)):
        raise AgentTooSlow(message("issue.agent_no_csr", host=host.name,
                                   seen=_last_seen(host)))
    run.step(Step.KEY, StepStatus.DONE, message("issue.agent_key", host=host.name))
    return pending()


@contextmanager
def challenge_files(run: RenewalRun, hosts: list[TargetHost], files: list[tuple[str, str]],
                    placed: Callable[[dict[str, Any]], None],
                    removed: Callable[[list[dict[str, Any]]], None]) -> Iterator[None]:
    """The challenge files handed to each agent host, waited for until every
    agent wrote them, and asked to be removed afterwards (the agent removes
    them at its next check-in)."""
    certificate_name = run.certificate.common_name
    rows: list[AgentChallenge] = []
    try:
        for host in hosts:
            for token_path, content in files:
                row = AgentChallenge.objects.create(host=host, run=run, path=token_path,
                                                    certificate_name=certificate_name,
                                                    content=content)
                rows.append(row)
                placed({"kind": "agent_http01", "challenge": row.pk})
        for host in hosts:
            _wait_written(run, host, [row.pk for row in rows if row.host_id == host.pk])
        yield
    finally:
        if rows:
            AgentChallenge.objects.filter(pk__in=[row.pk for row in rows]).update(
                remove_requested_at=timezone.now())
            removed([{"kind": "agent_http01", "challenge": row.pk} for row in rows])


def _wait_written(run: RenewalRun, host: TargetHost, ids: list[int]) -> None:
    mine = AgentChallenge.objects.filter(pk__in=ids)
    written = _until(lambda: not mine.filter(written_at__isnull=True, error="").exists(),
                     budget(host))
    failed = list(mine.exclude(error="").values_list("error", flat=True))
    if failed:
        raise PortalError(message("challenge.agent_write_failed", host=host.name,
                                  error=failed[0]),
                          transient=False, kind=FailureKind.AGENT_REPORT)
    if not written:
        raise AgentTooSlow(message("challenge.agent_too_slow", host=host.name,
                                   seen=_last_seen(host)))
    run.step(Step.CHALLENGE, StepStatus.DONE,
             message("challenge.agent_files", count=len(ids)), host=host)


def forget_leftovers(artefacts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Challenge files of a dead worker's attempt: asked to be removed. Returns
    the artefacts dealt with."""
    mine = [a for a in artefacts if a.get("kind") == "agent_http01"]
    if mine:
        AgentChallenge.objects.filter(pk__in=[a["challenge"] for a in mine],
                                      remove_requested_at__isnull=True).update(
            remove_requested_at=timezone.now())
    return mine
