"""A run's message sent at its run's priority: an incident's runs go ahead of
routine ones (INCIDENT_TASK_PRIORITY) whoever sends them -- the incident
starting, a run moving on to its hosts, or recovery sending again a run whose
worker or message was lost. Recovery is where an incident needs it most: its
runs are the ones lost by a worker killed in the middle of a large incident,
and sent again at the routine priority they would wait behind every routine
renewal queued since. The queue stays the task's (CELERY_TASK_ROUTES)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.conf import settings

from certificates.models import RenewalRun


def priority(incident_id: int | None) -> int | None:
    """The message priority of a run of this incident; None (the default) for
    a routine run."""
    return settings.INCIDENT_TASK_PRIORITY if incident_id is not None else None


def send(task: Any, run_id: int, *, incident_id: int | None) -> None:
    """``task`` (renew, deploy_run) for one run whose incident the caller knows."""
    urgent = priority(incident_id)
    if urgent is None:
        task.delay(run_id)
    else:
        task.apply_async((run_id,), priority=urgent)


def send_again(task: Any, run_ids: Iterable[int]) -> None:
    """``task`` for runs found by recovery: each at its own run's priority (one
    query for which of them belong to an incident)."""
    run_ids = list(run_ids)
    incidents = dict(RenewalRun.objects.filter(pk__in=run_ids).values_list("pk", "incident_id"))
    for run_id in run_ids:
        send(task, run_id, incident_id=incidents.get(run_id))
