"""Celery tasks: thin wrappers that take ids and call one service each.

Retries are not Celery's business here: backoff lives in the database
(Certificate.next_attempt_at) and a lost run is found by its lease, because
Redis re-delivers anything delayed longer than its visibility timeout.

Import rule: tasks import the services inside each function (the services
import this module, to enqueue on commit).
"""

import logging
from typing import Any

from celery import shared_task
from celery.signals import worker_ready

logger = logging.getLogger(__name__)

# Hard limits under the Redis visibility timeout (2 h), so that the broker never
# hands a task that is still running to a second worker; the system checks in
# fujissl_portal/checks.py hold the settings to that.
ACME_LIMITS = {"soft_time_limit": 10 * 60, "time_limit": 11 * 60}
DEPLOY_LIMITS = {"soft_time_limit": 12 * 60, "time_limit": 13 * 60}
# A discovery of DISCOVERY_MAX_ADDRESSES x DISCOVERY_PORTS, then each SNI name where
# TLS answered: minutes at the defaults; past the soft limit it ends as failed.
DISCOVERY_LIMITS = {"soft_time_limit": 30 * 60, "time_limit": 31 * 60}


@shared_task(name="certificates.heartbeat", ignore_result=True)
def heartbeat() -> None:
    """Proof that beat, the broker and a worker are all alive (dashboard warning)."""
    from .models import Heartbeat  # noqa: PLC0415 - see the import rule above

    Heartbeat.record("scheduler")


@shared_task(name="certificates.scan", ignore_result=True)
def scan_due_renewals() -> None:
    from . import renewal  # noqa: PLC0415
    from .incidents import service as incidents  # noqa: PLC0415

    # Incidents first: their retries open before routine runs take the certificates.
    incidents.advance_all()
    renewal.scan()


@shared_task(name="certificates.recover", ignore_result=True)
def recover_stale_runs() -> None:
    """Renewal runs and discoveries whose worker or message was lost."""
    from . import renewal  # noqa: PLC0415
    from .inventory import discovery_runs  # noqa: PLC0415

    renewal.recover_stale_runs()
    discovery_runs.requeue_lost()


@shared_task(name="certificates.checks", ignore_result=True)
def alert_checks() -> None:
    from . import renewal  # noqa: PLC0415

    renewal.periodic_checks()


@shared_task(name="certificates.watch", ignore_result=True)
def watch_runs_and_expiry() -> None:
    """Runs open past their time and expired certificates still served (every minute)."""
    from . import renewal  # noqa: PLC0415

    renewal.watch_runs_and_expiry()


@shared_task(name="certificates.retry_mail", ignore_result=True)
def retry_mail() -> None:
    from . import alerts  # noqa: PLC0415

    alerts.retry_unsent()


@worker_ready.connect
def take_over_on_start(**kwargs: Any) -> None:
    """A starting worker takes up the runs and hosts held by workers of this
    machine that are gone, instead of waiting for their leases to run out."""
    from django.db import connections  # noqa: PLC0415

    from . import renewal  # noqa: PLC0415

    try:
        renewal.take_over_from_gone_workers()
    except Exception:  # the database is not there yet: the leases still run out
        logger.exception("taking over from workers that are gone failed")
    finally:
        connections.close_all()  # not inherited by the pool's processes


@shared_task(name="certificates.renew", ignore_result=True, acks_late=True, **ACME_LIMITS)
def renew(run_id: int) -> None:
    from . import renewal  # noqa: PLC0415

    renewal.execute(run_id=run_id)


@shared_task(name="certificates.deploy_run", ignore_result=True, acks_late=True,
             **DEPLOY_LIMITS)
def deploy_run(run_id: int) -> None:
    from . import renewal  # noqa: PLC0415

    renewal.deploy(run_id=run_id)


@shared_task(name="certificates.conclude_runs", ignore_result=True, acks_late=True)
def conclude_runs(run_ids: list[int]) -> None:
    """Deploying runs whose requests are all answered end: succeeded or failed,
    with their alerts. Enqueued by whoever answered them, after letting the host
    go; one run's failure to conclude does not keep the others from it (its
    lease runs out and recovery concludes it)."""
    from . import renewal  # noqa: PLC0415

    for run_id in run_ids:
        try:
            renewal.conclude(run_id)
        except Exception:
            logger.exception("concluding run %s failed", run_id)


@shared_task(name="certificates.incident_item_replaced", ignore_result=True, acks_late=True,
             **ACME_LIMITS)
def incident_item_replaced(item_id: int) -> None:
    """A certificate of an incident is served with its replacement: its old
    version revoked (if the incident says so), the incident completed at the end."""
    from .incidents import service as incidents  # noqa: PLC0415

    incidents.item_replaced(item_id=item_id)


@shared_task(name="certificates.deploy_now", ignore_result=True, acks_late=True)
def deploy_now(certificate_id: int, host_ids: list[int] | None = None) -> None:
    """A "deploy now" enqueued by an earlier version of the portal (before deploy
    now became a run): opened as a deploy-only run, as a person's is today."""
    from . import renewal  # noqa: PLC0415

    renewal.deploy_now(certificate_id=certificate_id, host_ids=host_ids, by=None,
                       trigger="manual")


@shared_task(name="certificates.deliver_to_channel", ignore_result=True, acks_late=True,
             soft_time_limit=60, time_limit=90)
def deliver_to_channel(channel_id: int, title: str, body: str) -> None:
    """An alert, already rendered in the channel's language, sent to one channel."""
    from .notify import channels  # noqa: PLC0415

    channels.deliver(channel_id, title, body)


@shared_task(name="certificates.check_endpoints", ignore_result=True)
def check_endpoints() -> None:
    """The monitored endpoints whose check is due (the beat, every minute)."""
    from .inventory import monitoring  # noqa: PLC0415

    monitoring.check_due()


@shared_task(name="certificates.discover", ignore_result=True, **DISCOVERY_LIMITS)
def discover(discovery_id: int) -> None:
    """One discovery (a scan, or a host's files), its progress kept on its row."""
    from .inventory import discovery_runs  # noqa: PLC0415

    discovery_runs.run(discovery_id)


@shared_task(name="certificates.check_endpoint", ignore_result=True)
def check_endpoint(endpoint_id: int) -> None:
    from .inventory import monitoring  # noqa: PLC0415

    monitoring.check(endpoint_id)
