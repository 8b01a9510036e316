"""Celery tasks: thin wrappers that take ids and call one service each.

Retries are not Celery's business here: backoff lives in the database
(Certificate.next_attempt_at) and a lost run is found by its lease, because
Redis re-delivers anything delayed longer than its visibility timeout.
"""

from celery import shared_task

from . import deployment, renewal
from .models import Heartbeat

# Hard limits under the Redis visibility timeout (2 h) and under the run lease
# (15 min after the last step), so a run is never executed twice at once; the
# system checks in fujissl_portal/checks.py hold the settings to that.
ACME_LIMITS = {"soft_time_limit": 10 * 60, "time_limit": 11 * 60}
DEPLOY_LIMITS = {"soft_time_limit": 12 * 60, "time_limit": 13 * 60}


@shared_task(name="certificates.heartbeat", ignore_result=True)
def heartbeat():
    """Proof that beat, the broker and a worker are all alive (dashboard warning)."""
    Heartbeat.record("scheduler")


@shared_task(name="certificates.scan", ignore_result=True)
def scan_due_renewals():
    renewal.scan()


@shared_task(name="certificates.recover", ignore_result=True)
def recover_stale_runs():
    renewal.recover_stale_runs()


@shared_task(name="certificates.checks", ignore_result=True)
def alert_checks():
    renewal.periodic_checks()


@shared_task(name="certificates.renew", ignore_result=True, acks_late=True, **ACME_LIMITS)
def renew(run_id: int):
    renewal.execute(run_id=run_id)


@shared_task(name="certificates.deploy_run", ignore_result=True, acks_late=True,
             **DEPLOY_LIMITS)
def deploy_run(run_id: int):
    renewal.deploy(run_id=run_id)


@shared_task(name="certificates.deploy_now", ignore_result=True, acks_late=True,
             **DEPLOY_LIMITS)
def deploy_now(certificate_id: int, host_ids: list[int] | None = None):
    """A person's "deploy now": the current version to the certificate's hosts."""
    deployment.deploy_certificate(certificate_id=certificate_id, host_ids=host_ids)
