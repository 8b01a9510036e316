"""Celery works end to end on whatever broker is configured: the file-system
broker of the embedded defaults, or Redis in production and CI."""

import datetime

import pytest
from django.conf import settings
from django.urls import reverse
from django.utils import timezone

from certificates.models import Heartbeat
from certificates.tasks import heartbeat
from certificates.tests.waiting import wait_for


def test_a_task_sent_through_the_broker_runs_in_a_real_worker(celery_worker_process):
    heartbeat.delay()
    wait_for(Heartbeat.objects.filter(name="scheduler").exists, 30, "the task run by the worker",
             celery_worker_process)
    assert Heartbeat.is_stale() is False


def test_every_beat_entry_expires_so_that_a_backlog_cannot_pile_up():
    assert settings.CELERY_BEAT_SCHEDULE
    for name, entry in settings.CELERY_BEAT_SCHEDULE.items():
        assert entry["options"]["expires"] <= entry["schedule"], name


def test_tasks_travel_as_json_and_are_acknowledged_late():
    assert settings.CELERY_TASK_SERIALIZER == "json"
    assert settings.CELERY_ACCEPT_CONTENT == ["json"]
    assert settings.CELERY_TASK_ACKS_LATE is True
    assert settings.CELERY_WORKER_PREFETCH_MULTIPLIER == 1


@pytest.mark.django_db
def test_the_dashboard_warns_when_no_worker_has_answered_the_scheduler(client, owner, settings):
    settings.SCHEDULER_STARTUP_GRACE_SECONDS = 0  # long after start-up
    client.force_login(owner)
    warning = "id=\"scheduler-warning\""
    # Just started: no worker has had its turn yet, which is no reason to warn.
    assert warning not in client.get(reverse("certificates:dashboard")).content.decode()
    # Still no beat once STALE_AFTER has passed since the portal first looked.
    Heartbeat.objects.update(beat_at=timezone.now() - Heartbeat.STALE_AFTER * 2)
    assert warning in client.get(reverse("certificates:dashboard")).content.decode()
    Heartbeat.record()
    assert warning not in client.get(reverse("certificates:dashboard")).content.decode()
    Heartbeat.objects.update(beat_at=timezone.now() - Heartbeat.STALE_AFTER * 2)
    assert warning in client.get(reverse("certificates:dashboard")).content.decode()


@pytest.mark.django_db
def test_after_a_restart_the_warning_waits_for_the_start_up_grace(client, owner, settings,
                                                                   monkeypatch):
    """The last beat is from before the restart: old, but a worker starting with
    the portal has not had its turn yet."""
    from fujissl_portal import uptime

    Heartbeat.record()
    Heartbeat.objects.update(beat_at=timezone.now() - datetime.timedelta(days=1))
    settings.SCHEDULER_STARTUP_GRACE_SECONDS = 180
    monkeypatch.setattr(uptime, "STARTED_AT", timezone.now() - datetime.timedelta(seconds=30))
    client.force_login(owner)
    warning = 'id="scheduler-warning"'
    assert warning not in client.get(reverse("certificates:dashboard")).content.decode()
    # The grace over, still no beat: now it is said.
    monkeypatch.setattr(uptime, "STARTED_AT", timezone.now() - datetime.timedelta(seconds=181))
    assert warning in client.get(reverse("certificates:dashboard")).content.decode()


@pytest.mark.django_db
def test_a_scheduler_never_heard_from_is_stale_only_after_stale_after():
    start = timezone.now()
    assert Heartbeat.is_stale(now=start) is False
    assert Heartbeat.is_stale(now=start + Heartbeat.STALE_AFTER / 2) is False
    assert Heartbeat.is_stale(now=start + Heartbeat.STALE_AFTER * 2) is True
    # A beat, however late, is what counts from then on, as before.
    Heartbeat.record()
    later = timezone.now()
    assert Heartbeat.is_stale(now=later) is False
    assert Heartbeat.is_stale(now=later + Heartbeat.STALE_AFTER * 2) is True
