"""A discovery whose message was lost, or whose worker died, is not left
"waiting for a worker" for ever: beat's recovery pass sends it again once its
lease runs out, and a real worker runs it. A message that was only slow, or
delivered twice, does nothing while another worker holds the discovery."""

import datetime

import pytest
from django.utils import timezone

from certificates import tasks
from certificates.inventory import discovery_runs
from certificates.models import Discovery
from certificates.tests.waiting import wait_for


def lost(organization, operator, port, *, status="queued", lease_until=None):
    """A discovery as `start` records it, but whose message never reached a
    worker (or whose worker is gone): nothing was sent for it."""
    return Discovery.objects.create(
        organization=organization, requested_by=operator, targets="127.0.0.1",
        ports=f"{port}/smtp", total=1, status=status,
        lease_until=lease_until or timezone.now() - datetime.timedelta(seconds=1))


def test_a_discovery_whose_message_was_lost_is_sent_again_and_run(
        celery_processes, organization, operator, exim_smtp, settings):
    settings.DISCOVERY_PORTS = [exim_smtp.starttls_port]
    waiting = lost(organization, operator, exim_smtp.starttls_port,
                   lease_until=timezone.now() + datetime.timedelta(minutes=5))
    row = lost(organization, operator, exim_smtp.starttls_port)
    worker = celery_processes.worker(DISCOVERY_PORTS=str(exim_smtp.starttls_port))

    tasks.recover_stale_runs()  # what beat runs every RENEWAL_SCAN_SECONDS
    wait_for(lambda: Discovery.objects.get(pk=row.pk).status == "done", 60,
             "the discovery sent again", worker)
    row.refresh_from_db()
    assert row.served == 1 and row.lease_until is None and row.finished_at
    assert row.findings.get().fingerprint_sha256 == exim_smtp.leaf_sha256
    # One whose lease still runs is left to its message.
    waiting.refresh_from_db()
    assert waiting.status == "queued"
    # Sent once per lease: a second pass finds nothing lost.
    assert discovery_runs.requeue_lost() == []


@pytest.mark.django_db
def test_a_second_message_does_nothing_while_a_worker_holds_the_discovery(
        organization, operator, exim_smtp, settings, monkeypatch):
    settings.DISCOVERY_PORTS = [exim_smtp.starttls_port]
    sent = []
    monkeypatch.setattr(discovery_runs, "_enqueue", sent.append)
    held = lost(organization, operator, exim_smtp.starttls_port, status="running",
                lease_until=timezone.now() + datetime.timedelta(minutes=30))
    discovery_runs.run(held.pk)  # a slow or repeated message
    held.refresh_from_db()
    assert held.status == "running" and held.checked == 0 and not held.findings.exists()
    assert discovery_runs.requeue_lost() == [] and sent == []

    # Its lease ran out: the worker that held it is gone; it is sent again and
    # the message that comes runs it from the start.
    Discovery.objects.filter(pk=held.pk).update(
        lease_until=timezone.now() - datetime.timedelta(seconds=1))
    assert discovery_runs.requeue_lost() == [held.pk] and sent == [held.pk]
    held.refresh_from_db()
    assert held.status == "queued" and held.lease_until > timezone.now()
    discovery_runs.run(held.pk)
    held.refresh_from_db()
    assert held.status == "done" and held.served == 1 and held.lease_until is None
