"""An incident's runs keep their place ahead of routine renewals when recovery
sends them again: a run whose worker died (its lease ran out, or a starting
worker finds the holder gone) and a deploying run whose drainer was lost go out
at the incident's priority, on their task's own queue; a routine run found
with them keeps the routine priority."""

import datetime
import os
import socket

import pytest
from django.utils import timezone

from certificates import tasks
from certificates.hosts import deployment
from certificates.incidents import outcomes, service
from certificates.incidents.selection import Filter
from certificates.models import Deployment, IncidentCertificate, RenewalRun
from certificates.renewal import lifecycle, scheduling
from certificates.tests import factories

pytestmark = pytest.mark.django_db

HOUR = datetime.timedelta(hours=1)


@pytest.fixture
def sent(monkeypatch):
    """(task, run id, priority, queue) of every renew, deploy_run and
    conclude_runs (its run ids) message, the
    queue as Celery's router sends it (CELERY_TASK_ROUTES); nothing reaches the broker."""
    messages = []

    def capture(task):
        def apply_async(args=None, kwargs=None, **options):
            queue = task.app.amqp.router.route(dict(options), task.name, args, kwargs)["queue"]
            messages.append((task.name.rsplit(".", 1)[-1], args[0], options.get("priority"),
                             queue.name))
        return apply_async

    for task in (tasks.renew, tasks.deploy_run, tasks.conclude_runs):
        monkeypatch.setattr(task, "apply_async", capture(task))
    return messages


@pytest.fixture
def runs(organization, tmp_path, sent, django_capture_on_commit_callbacks):
    """An incident's run and a routine run, each of an issued certificate."""
    ca = factories.ca_account(organization, price=0)
    host = factories.host(organization, factories.ssh_keypair(tmp_path)[0])
    certificates = {}
    for name in ("urgent.example.test", "routine.example.test"):
        cert = factories.certificate(organization, ca, common_name=name, sans=[name])
        factories.make_current(cert, factories.new_version(cert, name))
        Deployment.objects.create(certificate=cert, host=host)
        certificates[name] = cert
    with django_capture_on_commit_callbacks(execute=True):
        service.start(organization=organization, name="CA bug",
                      chosen=Filter(name_pattern="urgent.*"), deadline=timezone.now() + HOUR)
    routine = lifecycle.open_run(certificate_id=certificates["routine.example.test"].pk,
                                 trigger=RenewalRun.Trigger.SCHEDULE)
    urgent = RenewalRun.objects.get(incident__isnull=False)
    sent.clear()
    return urgent, routine


def test_a_run_whose_worker_died_is_sent_again_at_its_incidents_priority(runs, sent, settings):
    urgent, routine = runs
    for run in runs:
        lifecycle.claim(run.pk)
    RenewalRun.objects.update(lease_until=timezone.now() - datetime.timedelta(seconds=1))

    assert sorted(scheduling.recover_stale_runs()) == sorted([urgent.pk, routine.pk])

    assert sorted(sent) == sorted([
        ("renew", urgent.pk, settings.INCIDENT_TASK_PRIORITY, "acme"),
        ("renew", routine.pk, None, "acme")])  # None: CELERY_TASK_DEFAULT_PRIORITY


def test_a_starting_worker_sends_a_gone_workers_incident_run_at_its_priority(runs, sent,
                                                                              settings):
    urgent, routine = runs
    gone = f"{socket.gethostname()[:30]}:{os.getpid()}"  # this process, as at start-up
    for run in runs:
        lifecycle.claim(run.pk, holder=gone)

    assert sorted(scheduling.take_over_from_gone_workers()) == sorted([urgent.pk, routine.pk])

    assert sorted(sent) == sorted([
        ("renew", urgent.pk, settings.INCIDENT_TASK_PRIORITY, "acme"),
        ("renew", routine.pk, None, "acme")])


def test_a_deploying_run_whose_drainer_was_lost_is_drained_again_at_its_priority(
    runs, sent, settings
):
    urgent, routine = runs
    for run in runs:
        assert lifecycle.to_deploying(lifecycle.claim(run.pk))
    RenewalRun.objects.update(lease_until=timezone.now() - datetime.timedelta(seconds=1))

    assert sorted(scheduling.recover_stale_runs()) == sorted([urgent.pk, routine.pk])

    assert sorted(sent) == sorted([
        ("deploy_run", urgent.pk, settings.INCIDENT_TASK_PRIORITY, "deploy"),
        ("deploy_run", routine.pk, None, "deploy")])


def test_an_incidents_runs_are_concluded_at_its_priority(runs, sent, settings,
                                                          django_capture_on_commit_callbacks):
    urgent, routine = runs
    for run in runs:
        assert lifecycle.to_deploying(lifecycle.claim(run.pk))  # no host left to wait for

    with django_capture_on_commit_callbacks(execute=True):
        deployment.enqueue_conclusions([urgent.pk, routine.pk])

    assert sorted(sent, key=str) == sorted([
        ("conclude_runs", [urgent.pk], settings.INCIDENT_TASK_PRIORITY, "celery"),
        ("conclude_runs", [routine.pk], None, "celery")], key=str)


def test_a_revocation_is_sent_again_only_once_its_message_can_be_taken_as_lost(
        organization, tmp_path, monkeypatch, settings, django_capture_on_commit_callbacks):
    """The incident's pass (every RENEWAL_SCAN_SECONDS) sends a replaced item's
    revocation again when its message was lost or its try failed a while ago,
    not at every pass while the message waits in a long queue."""
    revocations = []
    monkeypatch.setattr(tasks.incident_item_replaced, "apply_async",
                        lambda args, **options: revocations.append(args[0]))
    ca = factories.ca_account(organization, price=0)
    cert = factories.certificate(organization, ca)
    old = factories.new_version(cert, cert.common_name)
    factories.make_current(cert, old)
    incident = service.start(organization=organization, name="CA bug",
                             chosen=Filter(ca_account_id=ca.pk),
                             deadline=timezone.now() + HOUR, revoke_old=True)
    RenewalRun.objects.filter(incident=incident).update(status=RenewalRun.Status.SUCCEEDED)
    item = incident.items.get()
    assert item.old_version_id == old.pk
    new = factories.new_version(cert, cert.common_name)
    factories.make_current(cert, new)
    with django_capture_on_commit_callbacks(execute=True):
        outcomes.replaced(incident.pk, cert.pk, new.pk)
    assert revocations == [item.pk]  # sent as it was replaced

    now = timezone.now()
    service.advance(incident, now=now + datetime.timedelta(minutes=5))
    assert revocations == [item.pk]  # still waiting in the queue: not sent again

    lost = now + datetime.timedelta(seconds=settings.RENEWAL_QUEUE_SECONDS + 1)
    service.advance(incident, now=lost)
    service.advance(incident, now=lost + datetime.timedelta(seconds=5))
    assert revocations == [item.pk, item.pk]  # lost: sent again, once

    # Tried and refused by the CA: sent again once REVOKE_RETRY has passed.
    IncidentCertificate.objects.filter(pk=item.pk).update(revoke_tried_at=lost)
    service.advance(incident, now=lost + service.REVOKE_RETRY / 2)
    assert len(revocations) == 2
    later = lost + service.REVOKE_RETRY + datetime.timedelta(seconds=1)
    service.advance(incident, now=later)
    service.advance(incident, now=later + datetime.timedelta(seconds=5))
    assert revocations == [item.pk] * 3
