"""Renewal: what is due, the runs, and everything a run does before its
certificate reaches the hosts.

    lifecycle.py   every change of a run's status, each one guarded UPDATE
    scheduling.py  finding what is due, opening runs (scheduled, a person's
                   "renew now" and "deploy now"), recovery of lost runs
    sending.py     a run's message at its run's priority (an incident's first)
    run.py         carrying a run through: deposit, issuance, charge,
                   deployment, and its end (succeeded, failed, held)
    issuance.py    key, CSR, order, validation, finalization; challenges.py
                   publishes and removes the challenges; policy.py sets the
                   next renewal time
    deposit.py     reservations and charges, only through the ledger
    limits.py      the renewal window and the daily number of paid issuances
    checks.py      the periodic checks that need a person (deposit, expiry,
                   stuck runs, expired certificates still served)
    ca_check.py    a CA account's settings checked with the CA (on save, on request)

The names below are the package's services, for views, the API, commands and
tasks (``from certificates import renewal``; ``renewal.scan()``).
"""

from .checks import periodic_checks, watch_runs_and_expiry
from .run import (
    BACKOFF,
    DeploymentFailed,
    backoff,
    charge,
    conclude,
    deploy,
    execute,
    fail,
    fail_unexpectedly,
    succeed,
)
from .scheduling import (
    NoHosts,
    NotAHostOfTheCertificate,
    deploy_inline,
    deploy_now,
    due_certificates,
    recover_stale_runs,
    renew_now,
    retry_after_change,
    retry_now,
    run_inline,
    scan,
    scheduled_intents,
    start_run,
    take_over_from_gone_workers,
)

__all__ = [
    "BACKOFF", "DeploymentFailed", "NoHosts", "NotAHostOfTheCertificate", "backoff", "charge",
    "conclude", "deploy", "deploy_inline", "deploy_now", "due_certificates", "execute",
    "fail", "fail_unexpectedly", "periodic_checks", "recover_stale_runs", "renew_now",
    "retry_after_change", "retry_now", "run_inline", "scan", "scheduled_intents", "start_run",
    "succeed", "take_over_from_gone_workers", "watch_runs_and_expiry",
]
