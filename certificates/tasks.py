"""Celery tasks: thin wrappers that take ids and call one service each."""

from celery import shared_task

from .models import Heartbeat


@shared_task(name="certificates.heartbeat", ignore_result=True)
def heartbeat():
    """Proof that beat, the broker and a worker are all alive (dashboard warning)."""
    Heartbeat.record("scheduler")
