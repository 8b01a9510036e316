"""Retries, recovery and alerts that scale with a certificate's lifetime: leases
and backoff steps bounded by the validity left, runs of workers that are gone
taken over at once, a deposit forecast that counts every short renewal,
reminders as fractions of the lifetime, alerts for stuck runs and expired
certificates still served, and refused mails sent again. DB-level, with an
injected ``now`` where the code takes one."""

import datetime
import os
import socket
import subprocess
from decimal import Decimal
from email import message_from_bytes, policy
from zoneinfo import ZoneInfo

import pytest
from aiosmtpd.controller import Controller
from django.utils import timezone

from accounts.models import Role
from certificates import alerts, states, tasks
from certificates.models import (
    Certificate,
    Deployment,
    DeployRequest,
    Notification,
    RenewalRun,
    TargetHost,
)
from certificates.renewal import checks, deposit, lifecycle, run, scheduling
from certificates.renewal import policy as renewal_policy
from certificates.seams.errors import FailureKind, PortalError
from testbed.ports import free_port

from . import factories

pytestmark = pytest.mark.django_db

NOW = datetime.datetime(2030, 1, 1, 3, 0, tzinfo=datetime.UTC)
MINUTE, DAY = datetime.timedelta(minutes=1), datetime.timedelta(days=1)


@pytest.fixture
def ca(organization):
    return factories.ca_account(organization, price=Decimal("100"))


def lived(cert, *, lifetime, left, now=NOW):
    """Makes ``cert``'s current version ``lifetime`` long with ``left`` to run at ``now``."""
    version = factories.new_version(cert, cert.common_name)
    version.not_after = now + left
    version.not_before = version.not_after - lifetime
    version.save(update_fields=["not_before", "not_after"])
    factories.make_current(cert, version)
    return version


@pytest.fixture
def cert(organization, ca):
    return factories.certificate(organization, ca)


# -- leases ---------------------------------------------------------------------------


@pytest.mark.parametrize(("left", "run_lease", "queue_lease"), [
    (None, 90, 900),                       # no version yet: the settings
    (30 * DAY, 90, 900),                   # long-lived: the settings
    (10 * MINUTE, 60, 60),                 # a tenth of the validity left
    (MINUTE, 10, 30),                      # the floors
    (-MINUTE, 10, 30),                     # expired: the floors
])
def test_a_lease_is_at_most_a_tenth_of_the_validity_left(left, run_lease, queue_lease):
    expires_at = None if left is None else NOW + left
    assert renewal_policy.run_lease(expires_at, NOW).total_seconds() == run_lease
    assert renewal_policy.queue_lease(expires_at, NOW).total_seconds() == queue_lease


def test_a_claim_holds_a_short_lived_run_briefly_and_names_its_process(cert):
    cert.expires_at = timezone.now() + 5 * MINUTE
    cert.save(update_fields=["expires_at"])
    opened = lifecycle.open_run(certificate_id=cert.pk, trigger=RenewalRun.Trigger.SCHEDULE)
    assert opened.lease_until - timezone.now() < datetime.timedelta(seconds=31)

    claimed = lifecycle.claim(opened.pk)

    assert claimed.lease_seconds == 30
    assert 29 < (claimed.lease_until - claimed.started_at).total_seconds() <= 30
    assert claimed.held_by == f"{socket.gethostname()[:30]}:{os.getpid()}"
    assert lifecycle.extend_lease(claimed)
    claimed.refresh_from_db()
    assert claimed.lease_until - timezone.now() <= datetime.timedelta(seconds=30)


def _gone_pid() -> int:
    process = subprocess.Popen(["true"])
    process.wait()
    return process.pid


def test_a_starting_worker_takes_over_runs_and_hosts_of_processes_that_are_gone(
        organization, cert, tmp_path, monkeypatch):
    enqueued = []
    monkeypatch.setattr(tasks.renew, "delay", lambda pk: enqueued.append(("renew", pk)))
    monkeypatch.setattr(tasks.deploy_run, "delay", lambda pk: enqueued.append(("deploy", pk)))
    here, later = socket.gethostname()[:30], timezone.now() + DAY
    dead, alive = f"{here}:{_gone_pid()}", f"{here}:{os.getppid()}"
    elsewhere = "another-machine:1"
    runs = {}
    for holder in (dead, alive, elsewhere):
        other = factories.certificate(organization, cert.ca_account,
                                      common_name=f"{len(runs)}.example.test",
                                      sans=[f"{len(runs)}.example.test"])
        runs[holder] = RenewalRun.objects.create(
            certificate=other, trigger=RenewalRun.Trigger.SCHEDULE,
            status=RenewalRun.Status.RUNNING, attempts=1, held_by=holder, lease_until=later)
    # A deploying run waiting on a host whose drainer is gone.
    login_key, host_key = factories.ssh_keypair(tmp_path)
    host = factories.host(organization, login_key=login_key, host_key=host_key,
                          deploy_lock_owner=f"{dead}:abc", deploy_locked_until=later)
    version = factories.new_version(cert, cert.common_name)
    deploying = RenewalRun.objects.create(
        certificate=cert, trigger=RenewalRun.Trigger.SCHEDULE, attempts=1,
        status=RenewalRun.Status.DEPLOYING, lease_until=later, version=version)
    DeployRequest.objects.create(
        host=host, deployment=Deployment.objects.create(certificate=cert, host=host),
        version=version, run=deploying)

    scheduling.take_over_from_gone_workers()

    assert enqueued == [("renew", runs[dead].pk), ("deploy", deploying.pk)]
    statuses = dict(RenewalRun.objects.values_list("held_by", "status"))
    assert statuses[""] == RenewalRun.Status.QUEUED  # the dead one's, let go
    assert statuses[alive] == statuses[elsewhere] == RenewalRun.Status.RUNNING
    assert TargetHost.objects.get(pk=host.pk).deploy_lock_owner == ""


# -- backoff --------------------------------------------------------------------------


@pytest.mark.parametrize(("failures", "left", "expected"), [
    (2, 60 * DAY, 10 * MINUTE),            # long-lived: the usual step
    (4, 60 * DAY, DAY),
    (2, 8 * MINUTE, 2 * MINUTE),           # a quarter of the validity left
    (4, 2 * DAY, DAY / 2),
    (2, 2 * MINUTE, MINUTE),               # near expiry: RENEWAL_RETRY_MIN_SECONDS
    (3, -10 * MINUTE, MINUTE),             # past it: still every minute
    (1, 2 * MINUTE, MINUTE),
])
def test_each_backoff_step_is_capped_at_a_quarter_of_the_validity_left(
        failures, left, expected):
    step = run.backoff(failures)
    assert renewal_policy.capped_backoff(step, NOW + left, NOW) == expected


def _failing_run(cert, *, transient, failures=1):
    Certificate.objects.filter(pk=cert.pk).update(failure_count=failures - 1)
    running = RenewalRun.objects.create(certificate=cert, trigger=RenewalRun.Trigger.SCHEDULE,
                                        status=RenewalRun.Status.RUNNING, attempts=1)
    error = PortalError("the CA is down", transient=transient, kind=FailureKind.CA_ERROR)
    before = timezone.now()
    run.fail(running, error)
    cert.refresh_from_db()
    return cert.next_attempt_at - before


def test_a_failure_near_expiry_is_retried_within_a_quarter_of_the_time_left(cert, settings):
    settings.RENEWAL_RETRY_MIN_SECONDS = 5
    Certificate.objects.filter(pk=cert.pk).update(expires_at=timezone.now() + 4 * MINUTE)
    # The second failure: 10 minutes for a long-lived certificate, here a minute at most.
    delay = _failing_run(cert, transient=True, failures=2)
    assert 55 <= delay.total_seconds() <= 61
    Certificate.objects.filter(pk=cert.pk).update(expires_at=timezone.now() - MINUTE)
    assert 4 <= _failing_run(cert, transient=True, failures=5).total_seconds() <= 6


def test_a_permanent_failure_still_waits_a_day_for_a_person(cert):
    Certificate.objects.filter(pk=cert.pk).update(expires_at=timezone.now() + 4 * MINUTE)
    assert _failing_run(cert, transient=False) > DAY - MINUTE


# -- the deposit forecast ---------------------------------------------------------------


def test_the_forecast_counts_every_renewal_of_a_ten_minute_certificate(organization, ca, cert):
    lived(cert, lifetime=10 * MINUTE, left=5 * MINUTE)
    Certificate.objects.filter(pk=cert.pk).update(renew_after=NOW)
    deposit.top_up(ca_account=ca, amount=Decimal("1000"))  # ten renewals

    outlook = deposit.forecast(ca, now=NOW)

    # Renewed when half remains: every 5 minutes, 288 a day, the first one now.
    assert outlook.due[30] == (288 * 30 + 1, Decimal("100") * (288 * 30 + 1))
    assert outlook.due[90][0] == 288 * 90 + 1
    # The eleventh renewal, 50 minutes from now, is the first it cannot pay.
    assert outlook.runs_out_on == timezone.localtime(NOW + 50 * MINUTE).date()


def test_the_forecast_runs_out_on_the_day_of_the_first_unpaid_renewal(organization, ca, cert):
    lived(cert, lifetime=10 * DAY, left=5 * DAY)  # renewed every 5 days
    Certificate.objects.filter(pk=cert.pk).update(renew_after=NOW + DAY)
    deposit.top_up(ca_account=ca, amount=Decimal("250"))  # two renewals

    outlook = deposit.forecast(ca, now=NOW)

    assert outlook.due[30][0] == 6  # days 1, 6, 11, 16, 21, 26
    assert outlook.runs_out_on == timezone.localtime(NOW + 11 * DAY).date()


# -- reminders, stuck runs, expired certificates ----------------------------------------


@pytest.fixture
def told(owner):
    def kinds(kind, **filters):
        return sorted(Notification.objects.filter(kind=kind, recipient=owner.email, **filters)
                      .values_list("event", flat=True))
    return kinds


@pytest.mark.parametrize(("lifetime", "left", "reminder"), [
    (6 * DAY, 3 * DAY, None),              # at the renewal time, with the first failure: none
    (6 * DAY, DAY, "14d"),                 # under a quarter of the lifetime
    (6 * DAY, DAY / 2, "3d"),              # under a tenth
    (90 * DAY, 20 * DAY, None),
    (90 * DAY, 13 * DAY, "14d"),           # long-lived: 14 and 3 days as before
    (90 * DAY, 2 * DAY, "3d"),
])
def test_reminders_of_a_failing_renewal_are_fractions_of_a_short_lifetime(
        cert, told, lifetime, left, reminder):
    version = lived(cert, lifetime=lifetime, left=left)
    Certificate.objects.filter(pk=cert.pk).update(failure_count=1, renew_after=NOW - MINUTE)

    checks.periodic_checks(now=NOW)

    expected = [f"{reminder}:version-{version.pk}"] if reminder else []
    assert told(Notification.Kind.RENEWAL_FAILED) == expected


def test_a_run_open_past_its_expected_time_is_told_once(organization, ca, cert, told):
    lived(cert, lifetime=10 * MINUTE, left=4 * MINUTE, now=timezone.now())
    opened = RenewalRun.objects.create(certificate=cert, trigger=RenewalRun.Trigger.SCHEDULE,
                                       created_at=timezone.now() - 90 * datetime.timedelta(
                                           seconds=1))
    long_lived = factories.certificate(organization, ca, common_name="long.example.test",
                                       sans=["long.example.test"])
    lived(long_lived, lifetime=90 * DAY, left=30 * DAY, now=timezone.now())
    RenewalRun.objects.create(certificate=long_lived, trigger=RenewalRun.Trigger.SCHEDULE,
                              created_at=timezone.now() - 30 * MINUTE)

    checks.watch_runs_and_expiry()
    assert told(Notification.Kind.RUN_STUCK) == []  # 90 s of a 10-minute life: not yet

    RenewalRun.objects.filter(pk=opened.pk).update(created_at=timezone.now() - 3 * MINUTE)
    checks.watch_runs_and_expiry()
    checks.watch_runs_and_expiry()
    assert told(Notification.Kind.RUN_STUCK) == [f"run-{opened.pk}"]

    # A long-lived certificate's run has an hour.
    checks.watch_runs_and_expiry(now=timezone.now() + 31 * MINUTE)
    assert len(told(Notification.Kind.RUN_STUCK)) == 2


def test_an_expired_certificate_still_served_is_told_even_after_expiry(
        organization, cert, told, tmp_path):
    version = lived(cert, lifetime=10 * MINUTE, left=-MINUTE, now=timezone.now())
    login_key, host_key = factories.ssh_keypair(tmp_path)
    host = factories.host(organization, login_key=login_key, host_key=host_key)
    deployment = Deployment.objects.create(certificate=cert, host=host, last_version=version,
                                           served=True)
    RenewalRun.objects.create(certificate=cert, trigger=RenewalRun.Trigger.SCHEDULE,
                              status=RenewalRun.Status.RUNNING)

    checks.watch_runs_and_expiry()
    checks.watch_runs_and_expiry()

    assert told(Notification.Kind.EXPIRED) == [f"version-{version.pk}"]
    row = Notification.objects.filter(kind=Notification.Kind.EXPIRED).first()
    assert row.sent_at and row.params["extra"]["hosts"] == host.name
    # A host that serves something else (a newer version) is not told about.
    Notification.objects.all().delete()
    Deployment.objects.filter(pk=deployment.pk).update(served=False)
    checks.watch_runs_and_expiry()
    assert told(Notification.Kind.EXPIRED) == []


def test_an_expired_certificate_with_an_open_run_counts_as_renewing(cert):
    Certificate.objects.filter(pk=cert.pk).update(expires_at=timezone.now() - MINUTE)
    assert states.state_of(cert) == states.State.EXPIRED
    RenewalRun.objects.create(certificate=cert, trigger=RenewalRun.Trigger.SCHEDULE,
                              status=RenewalRun.Status.RUNNING)
    counts = states.counts(Certificate.objects.all())
    assert counts[states.State.RENEWING] == 1 and counts[states.State.EXPIRED] == 0


# -- mail refused, then sent again ------------------------------------------------------


class RefusingOnce:
    """An aiosmtpd handler that answers the first message with 500, then accepts."""

    def __init__(self):
        self.refused, self.envelopes = 0, []

    async def handle_DATA(self, server, session, envelope):
        if not self.refused:
            self.refused += 1
            return "500 Mailbox unavailable, try later"
        self.envelopes.append(envelope)
        return "250 Message accepted for delivery"


def test_a_mail_the_server_refused_is_sent_again_in_the_recipients_language(
        settings, organization, ca, cert, django_user_model):
    from accounts.models import Membership
    from accounts.tests.factors import give_totp

    person = django_user_model.objects.create_user(username="ja-owner", language="ja",
                                                   email="ja-owner@example.test")
    Membership.objects.create(user=person, organization=organization, role=Role.OWNER)
    give_totp(person)
    ca.contact_email = ""
    ca.save(update_fields=["contact_email"])
    expired_at = timezone.now()
    handler = RefusingOnce()
    controller = Controller(handler, hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
        settings.EMAIL_HOST, settings.EMAIL_PORT = controller.hostname, controller.port
        settings.EMAIL_USE_TLS = settings.EMAIL_USE_SSL = False
        about = dict(certificate=cert, event="version-1",
                     extra={"hosts": "web1", "expired_at": expired_at})
        [row] = alerts.notify(Notification.Kind.EXPIRED, **about)
        assert row.sent_at is None and "500" in row.error and row.attempts == 1
        assert row.next_attempt_at - row.created_at <= MINUTE + datetime.timedelta(seconds=1)
        # Not told, but not to be told twice either: its retry is pending.
        assert alerts.notify(Notification.Kind.EXPIRED, **about) == []
        assert alerts.retry_unsent(now=row.next_attempt_at - datetime.timedelta(seconds=1)) == 0

        assert alerts.retry_unsent(now=row.next_attempt_at) == 1
        assert alerts.retry_unsent(now=row.next_attempt_at) == 0  # sent once
    finally:
        controller.stop()

    row.refresh_from_db()
    assert row.sent_at and row.attempts == 2 and row.next_attempt_at is None
    [envelope] = handler.envelopes
    message = message_from_bytes(envelope.content, policy=policy.default)
    assert envelope.rcpt_tos == [person.email]
    assert message["Subject"].strip() == row.subject and "期限切れ" in row.subject
    text = message.get_body(("plain",)).get_content()
    assert "web1" in text and cert.common_name in text
    assert timezone.localtime(expired_at, ZoneInfo(organization.time_zone)).strftime(
        "%Y-%m-%d %H:%M:%S") in text


def test_a_mail_whose_retries_gave_up_is_told_again_by_the_next_alert(cert, owner, settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", free_port()  # nobody listens
    [row, _contact] = alerts.notify(Notification.Kind.EXPIRING, certificate=cert,
                                    extra={"days": 1})
    Notification.objects.update(created_at=timezone.now() - DAY)
    assert alerts.retry_unsent(now=row.next_attempt_at) == 0
    row.refresh_from_db()
    assert row.next_attempt_at is None and row.attempts == 2  # a day old: given up
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    assert len(alerts.notify(Notification.Kind.EXPIRING, certificate=cert,
                             extra={"days": 1})) == 2
