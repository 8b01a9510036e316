"""The renewal scan, backoff, the recovery pass, the deposit's forecast and
warnings, and held steps, without a broker or a worker (the renewals
themselves, with workers: test_renewal.py)."""

import datetime
import threading
from decimal import Decimal

import pytest
from django.core import mail
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from certificates import renewal
from certificates.models import Certificate, Notification, RenewalRun
from certificates.renewal import deposit, lifecycle, scheduling
from certificates.tests.factories import ca_account


@pytest.mark.django_db(transaction=True)
def test_two_scans_at_once_start_one_run_per_certificate(organization, monkeypatch):
    from certificates import tasks

    monkeypatch.setattr(tasks.renew, "delay", lambda run_id: None)  # no broker needed here
    ca = ca_account(organization)
    certs = [Certificate.objects.create(organization=organization, ca_account=ca,
                                        common_name=f"c{i}.example.test",
                                        sans=[f"c{i}.example.test"]) for i in range(10)]
    barrier = threading.Barrier(2)

    def scan():
        barrier.wait()
        try:
            renewal.scan()
        finally:
            connection.close()

    threads = [threading.Thread(target=scan) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    for cert in certs:
        assert RenewalRun.objects.filter(certificate=cert).count() == 1


def due_without_broker(organization, monkeypatch, count):
    """``count`` due certificates, and the list of run ids the scan enqueues."""
    from certificates import tasks

    sent = []
    monkeypatch.setattr(tasks.renew, "delay", sent.append)
    ca = ca_account(organization)
    return [Certificate.objects.create(organization=organization, ca_account=ca,
                                       common_name=f"c{i}.example.test")
            for i in range(count)], sent


@pytest.mark.django_db
def test_the_scan_opens_and_enqueues_one_run_per_due_certificate_in_one_insert(
    organization, monkeypatch, django_capture_on_commit_callbacks
):
    certs, sent = due_without_broker(organization, monkeypatch, 5)
    with django_capture_on_commit_callbacks(execute=True):
        with CaptureQueriesContext(connection) as queries:
            opened = renewal.scan()
    inserts = [q["sql"] for q in queries.captured_queries
               if q["sql"].startswith('INSERT INTO "certificates_renewalrun"')]
    assert len(inserts) == 1
    runs = RenewalRun.objects.filter(pk__in=opened)
    assert sorted(runs.values_list("certificate_id", flat=True)) == [c.pk for c in certs]
    assert all(run.status == RenewalRun.Status.QUEUED and run.lease_until for run in runs)
    assert sorted(sent) == sorted(opened)


@pytest.mark.django_db
def test_a_certificate_that_got_a_run_since_it_was_found_due_is_skipped_by_the_scan(
    organization, monkeypatch, django_capture_on_commit_callbacks
):
    certs, sent = due_without_broker(organization, monkeypatch, 3)
    # A person pressed "renew now" on the second between the scan's query and
    # its insert: the query still found it due.
    found_due = list(Certificate.objects.filter(pk__in=[c.pk for c in certs]))
    pressed = renewal.renew_now(certificate_id=certs[1].pk)
    monkeypatch.setattr(scheduling, "due_certificates",
                        lambda now=None: Certificate.objects.filter(
                            pk__in=[c.pk for c in found_due]))
    with django_capture_on_commit_callbacks(execute=True):
        opened = renewal.scan()
    assert len(opened) == 2 and pressed.pk not in opened
    for cert in certs:
        assert RenewalRun.objects.filter(certificate=cert).count() == 1
    assert sorted(sent) == sorted(opened)


def test_backoff_is_one_ten_and_a_hundred_minutes_then_daily():
    minutes = [renewal.backoff(n).total_seconds() / 60 for n in range(1, 7)]
    assert minutes == [1, 10, 100, 1440, 1440, 1440]


@pytest.mark.django_db
def test_the_deposit_forecast_matches_a_hand_computation(organization):
    now = timezone.now()
    ca = ca_account(organization, price=Decimal("1000"))
    deposit.top_up(ca_account=ca, amount=Decimal("2500"))
    # Three certificates due in 5, 20 and 45 days, each renewing every 60 days
    # (no version to learn from); one more not auto-renewed, which costs nothing.
    for i, days in enumerate([5, 20, 45]):
        Certificate.objects.create(organization=organization, ca_account=ca,
                                   common_name=f"f{i}.example.test",
                                   renew_after=now + datetime.timedelta(days=days))
    Certificate.objects.create(organization=organization, ca_account=ca,
                               common_name="manual.example.test", auto_renew=False,
                               renew_after=now + datetime.timedelta(days=1))

    outlook = deposit.forecast(ca, now=now)

    # By hand: renewals on days 5, 20, 45, 65 (5+60), 80 (20+60) within 90 days.
    assert outlook.due[30] == (2, Decimal("2000"))
    assert outlook.due[60] == (3, Decimal("3000"))
    assert outlook.due[90] == (5, Decimal("5000"))
    # 2500 pays two renewals; the third, on day 45, cannot be paid.
    assert outlook.runs_out_on == timezone.localtime(now + datetime.timedelta(days=45)).date()
    assert outlook.is_low(Decimal("0")) is False  # 2500 covers the next 30 days' 2000
    assert outlook.is_low(Decimal("3000")) is True


@pytest.mark.django_db
def test_a_ca_priced_at_zero_raises_no_deposit_warning(organization, owner_with_mail):
    ca_account(organization, price=Decimal("0"), low_balance_threshold=Decimal("1000"))
    renewal.periodic_checks()
    assert not Notification.objects.filter(kind=Notification.Kind.DEPOSIT_LOW).exists()
    assert mail.outbox == []


@pytest.mark.django_db
def test_a_low_deposit_is_announced_once_a_day(organization, owner_with_mail):
    ca = ca_account(organization, price=Decimal("1000"), low_balance_threshold=Decimal("5000"))
    deposit.top_up(ca_account=ca, amount=Decimal("1500"))
    renewal.periodic_checks()
    renewal.periodic_checks()
    sent = Notification.objects.filter(kind=Notification.Kind.DEPOSIT_LOW,
                                       recipient="owner@example.test")
    assert sent.count() == 1


@pytest.mark.django_db
def test_the_scan_and_the_dashboard_agree_on_what_is_due(organization):
    from certificates import states

    now = timezone.now()
    ca = ca_account(organization)
    past, future = now - datetime.timedelta(hours=1), now + datetime.timedelta(hours=1)
    cases = {  # name: (renew_after, next_attempt_at, auto_renew, due?)
        "time-come": (past, None, True, True),
        "time-not-come": (future, None, True, False),
        "backing-off": (past, future, True, False),
        "retry-come": (future, past, True, True),
        "manual-only": (past, None, False, False),
    }
    for name, (renew_after, next_attempt_at, auto_renew, _due) in cases.items():
        Certificate.objects.create(
            organization=organization, ca_account=ca, common_name=f"{name}.example.test",
            renew_after=renew_after, next_attempt_at=next_attempt_at, auto_renew=auto_renew,
            expires_at=now + datetime.timedelta(days=200))

    scanned = set(renewal.due_certificates(now).values_list("common_name", flat=True))
    shown_due = set(states.filter_state(Certificate.objects.all(), states.State.DUE, now)
                    .values_list("common_name", flat=True))
    expected = {f"{name}.example.test" for name, case in cases.items() if case[3]}
    assert scanned == expected
    assert shown_due == expected


@pytest.mark.django_db
def test_a_lost_run_is_enqueued_again_once_per_lease(organization, monkeypatch):
    from certificates import tasks

    sent = []
    monkeypatch.setattr(tasks.renew, "delay", sent.append)
    cert = Certificate.objects.create(organization=organization,
                                      ca_account=ca_account(organization),
                                      common_name="lost.example.test")
    run = RenewalRun.objects.create(certificate=cert, trigger=RenewalRun.Trigger.SCHEDULE,
                                    status=RenewalRun.Status.RUNNING,
                                    lease_until=timezone.now() - datetime.timedelta(seconds=1))

    assert renewal.recover_stale_runs() == [run.pk]
    assert renewal.recover_stale_runs() == []  # the fresh lease holds it back
    assert sent == [run.pk]
    run.refresh_from_db()
    assert run.status == RenewalRun.Status.QUEUED
    assert lifecycle.claim(run.pk) is not None  # a worker takes it as any queued run


def test_the_recovery_pass_removes_deploy_requests_nobody_will_read(organization, tmp_path):
    from certificates.models import Deployment, DeployRequest
    from certificates.tests import factories
    from certificates.tests.factories import new_version

    cert = factories.certificate(organization, ca_account(organization),
                                 common_name="queue.example.test")
    host = factories.host(organization, factories.ssh_keypair(tmp_path)[0])
    deployment = Deployment.objects.create(certificate=cert, host=host)
    version = new_version(cert, "queue.example.test")
    now = timezone.now()
    ended = RenewalRun.objects.create(certificate=cert, trigger=RenewalRun.Trigger.SCHEDULE,
                                      status=RenewalRun.Status.FAILED)
    live = RenewalRun.objects.create(certificate=cert, trigger=RenewalRun.Trigger.SCHEDULE,
                                     status=RenewalRun.Status.DEPLOYING,
                                     lease_until=now + datetime.timedelta(minutes=1))

    def request(**fields):
        return DeployRequest.objects.create(host=host, deployment=deployment, version=version,
                                            **fields)

    answered_long_ago = request(run=ended, finished_at=now - datetime.timedelta(hours=2))
    abandoned = request(run=None, requested_at=now - datetime.timedelta(hours=2))
    answered_now = request(run=ended, finished_at=now)
    # A live run's request, queued behind a deep host queue for hours: kept.
    waiting_long = request(run=live, requested_at=now - datetime.timedelta(hours=3))

    renewal.recover_stale_runs(now=now)

    assert set(DeployRequest.objects.values_list("pk", flat=True)) == {
        answered_now.pk, waiting_long.pk}
    assert not DeployRequest.objects.filter(pk__in=[answered_long_ago.pk, abandoned.pk]).exists()


@pytest.mark.django_db
def test_held_steps_are_written_together_in_order_with_their_own_times(organization):
    from certificates.models.runs import RenewalStep, held_steps, step_recorded

    ca = ca_account(organization)
    runs = [RenewalRun.objects.create(
        certificate=Certificate.objects.create(organization=organization, ca_account=ca,
                                               common_name=f"h{i}.example.test"),
        trigger=RenewalRun.Trigger.SCHEDULE, status=RenewalRun.Status.RUNNING)
        for i in range(2)]
    announced = []

    def listen(sender, step, **kwargs):
        announced.append((step.run_id, step.name))

    step_recorded.connect(listen, sender=RenewalStep)
    try:
        with held_steps() as flush:
            with held_steps() as inner_flush:  # nested: the outer one writes
                for run in runs:
                    run.step("config_test", "done", "ok")
                inner_flush()
            flush(max_age=60)  # held for less than a minute: not yet
            assert not RenewalStep.objects.exists() and announced == []
            with CaptureQueriesContext(connection) as queries:
                flush()
            assert [q["sql"][:38] for q in queries.captured_queries
                    if q["sql"].startswith("INSERT")] == ['INSERT INTO "certificates_renewalstep"']
            for run in runs:
                run.step("reload", "done")
        # Leaving writes what is still held.
    finally:
        step_recorded.disconnect(listen, sender=RenewalStep)
    for run in runs:
        steps = list(run.steps.order_by("at", "pk"))
        assert [s.name for s in steps] == ["config_test", "reload"]
        assert steps[0].at < steps[1].at
        run.refresh_from_db()
        assert run.lease_until is not None  # a recorded step still extends the lease
    assert sorted(announced) == sorted(
        (run.pk, name) for run in runs for name in ("config_test", "reload"))
