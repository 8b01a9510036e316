"""Automatic renewal with real Celery workers and beat through the configured
broker (Redis in CI), against Pebble and sshd + nginx hosts. The scan and the
recovery pass on their own, without a broker: test_renewal_scan.py."""

import datetime
import signal
from decimal import Decimal

import pytest
from django.utils import timezone

from certificates import renewal
from certificates.models import (
    Certificate,
    CertificateVersion,
    Deployment,
    DepositEntry,
    Notification,
    RenewalRun,
)
from certificates.renewal import deposit
from certificates.tests.factories import ca_account, http01_certificate, portal_host
from certificates.tests.waiting import finished, run_of, wait_for


def taken_over(cert):
    def check():
        renewal.recover_stale_runs()  # as beat would, had the survivor not taken it over
        return finished(cert)()
    return check


@pytest.fixture
def worker_env(pebble):
    return {"ACME_CA_BUNDLE": pebble.ca_bundle, "DEPLOY_TLS_GRACE_SECONDS": 10}


def due_certificate(organization, pebble, target_host, **ca_fields):
    ca = ca_account(organization, directory_url=pebble.directory_url, **ca_fields)
    host = portal_host(organization, target_host)
    cert = http01_certificate(organization, ca, host, [target_host.name])
    Certificate.objects.filter(pk=cert.pk).update(
        renew_after=timezone.now() - datetime.timedelta(minutes=1))
    return cert


def test_a_due_certificate_is_renewed_and_deployed_with_nobody_acting(
    celery_processes, worker_env, organization, pebble, target_host, settings
):
    settings.ACME_CA_BUNDLE = str(pebble.ca_bundle)
    cert = due_certificate(organization, pebble, target_host, price=Decimal("0"))
    worker = celery_processes.worker(**worker_env)
    beat = celery_processes.beat(RENEWAL_SCAN_SECONDS=2)  # scans and recovery: 1 message a second

    wait_for(finished(cert), 90, "the scheduled renewal", worker, beat)

    run = run_of(cert)
    assert run.trigger == RenewalRun.Trigger.SCHEDULE
    assert run.status == RenewalRun.Status.SUCCEEDED, (run.error, list(run.steps.values()))
    cert.refresh_from_db()
    assert cert.renew_after > timezone.now()
    assert cert.failure_count == 0
    deployment = Deployment.objects.get(certificate=cert)
    assert deployment.last_version_id == cert.current_version_id
    assert deployment.served is True
    target_host.wait_for_served_leaf(cert.current_version.fingerprint_sha256)


def test_a_worker_killed_mid_run_leaves_no_run_stuck_and_charges_once(
    celery_processes, worker_env, organization, pebble, target_host, settings
):
    settings.ACME_CA_BUNDLE = str(pebble.ca_bundle)
    cert = due_certificate(organization, pebble, target_host, price=Decimal("1100"))
    deposit.top_up(ca_account=cert.ca_account, amount=Decimal("10000"), note="test")
    env = {**worker_env, "RENEWAL_LEASE_SECONDS": 3}
    doomed = celery_processes.worker(**env)
    run = renewal.start_run(certificate_id=cert.pk, trigger=RenewalRun.Trigger.SCHEDULE)

    # Killed once the ACME order exists: the CA has work in flight for this run.
    wait_for(lambda: RenewalRun.objects.get(pk=run.pk).acme_order_url, 60,
             "the ACME order", doomed)
    celery_processes.kill(doomed, signal.SIGKILL)
    run.refresh_from_db()
    # Usually still issuing; on a loaded machine it may have reached deployment.
    killed_in = run.status
    assert killed_in in (RenewalRun.Status.RUNNING, RenewalRun.Status.DEPLOYING)

    # The survivor takes the run over as it starts (its holder's process is gone);
    # on another machine it would wait for the lease to run out.
    survivor = celery_processes.worker(**env)
    wait_for(taken_over(cert), 90, "the run taken up again", survivor)

    run.refresh_from_db()
    assert run.status == RenewalRun.Status.SUCCEEDED, (run.error, list(run.steps.values()))
    if killed_in == RenewalRun.Status.RUNNING:
        assert run.attempts >= 2  # claimed again, its ACME order resumed
    else:
        assert run.attempts == 1  # drained again, never issued again
    assert RenewalRun.objects.filter(certificate=cert).count() == 1
    assert CertificateVersion.objects.filter(certificate=cert).count() == 1
    assert DepositEntry.objects.filter(ca_account=cert.ca_account,
                                       kind=DepositEntry.Kind.CHARGE).count() == 1
    cert.refresh_from_db()
    target_host.wait_for_served_leaf(cert.current_version.fingerprint_sha256)


def test_a_worker_killed_while_the_ca_validates_leaves_no_challenge_file_behind(
    celery_processes, worker_env, organization, pebble, target_host, settings
):
    settings.ACME_CA_BUNDLE = str(pebble.ca_bundle)
    cert = due_certificate(organization, pebble, target_host, price=Decimal("0"))
    env = {**worker_env, "RENEWAL_LEASE_SECONDS": 3}
    doomed = celery_processes.worker(**env)
    challenges = target_host.webroot / ".well-known" / "acme-challenge"
    run = renewal.start_run(certificate_id=cert.pk, trigger=RenewalRun.Trigger.SCHEDULE)

    # Killed while its challenge file is on the host: the CA is validating.
    wait_for(lambda: challenges.is_dir() and any(challenges.iterdir()), 60,
             "the challenge file on the host", doomed, every=0.01)
    celery_processes.kill(doomed, signal.SIGKILL)
    left = [path.name for path in challenges.iterdir()]
    assert left and RenewalRun.objects.get(pk=run.pk).artefacts

    # The survivor takes the run over as it starts (its holder's process is gone);
    # on another machine it would wait for the lease to run out.
    survivor = celery_processes.worker(**env)
    wait_for(taken_over(cert), 90, "the run taken up again", survivor)

    run.refresh_from_db()
    assert run.status == RenewalRun.Status.SUCCEEDED, (run.error, list(run.steps.values()))
    assert [path.name for path in challenges.iterdir()] == []  # removed by who finished it
    assert run.artefacts == []
    assert run.steps.filter(name="cleanup", status="done").exists()


def test_a_ca_that_is_down_gives_backoff_and_one_alert_then_renews_when_back(
    celery_processes, worker_env, organization, owner_with_mail, pebble_factory, target_host,
    settings
):
    ca_server = pebble_factory()
    settings.ACME_CA_BUNDLE = str(ca_server.ca_bundle)
    cert = due_certificate(organization, ca_server, target_host, price=Decimal("0"))
    worker = celery_processes.worker(**{**worker_env, "ACME_CA_BUNDLE": ca_server.ca_bundle})
    ca_server.stop()

    delays = []
    for _attempt in range(2):
        before = timezone.now()
        renewal.scan()
        wait_for(finished(cert), 60, "a failed attempt", worker)
        cert.refresh_from_db()
        assert run_of(cert).error_class == "transient"
        delays.append(cert.next_attempt_at - before)
        assert renewal.scan() == []  # backing off: not due again yet
        Certificate.objects.filter(pk=cert.pk).update(next_attempt_at=timezone.now())

    assert datetime.timedelta(seconds=50) < delays[0] <= datetime.timedelta(minutes=1, seconds=5)
    assert datetime.timedelta(minutes=9) < delays[1] <= datetime.timedelta(minutes=10, seconds=5)
    alerts = Notification.objects.filter(certificate=cert,
                                         kind=Notification.Kind.RENEWAL_FAILED)
    assert alerts.filter(recipient="owner@example.test").count() == 1

    ca_server.start()
    renewal.scan()
    wait_for(finished(cert), 90, "the renewal after the CA came back", worker)
    assert run_of(cert).status == RenewalRun.Status.SUCCEEDED
    cert.refresh_from_db()
    assert cert.failure_count == 0 and cert.next_attempt_at is None


def test_a_short_deposit_refuses_the_renewal_once_and_renews_after_a_top_up(
    celery_processes, worker_env, organization, owner_with_mail, pebble, target_host, settings
):
    settings.ACME_CA_BUNDLE = str(pebble.ca_bundle)
    cert = due_certificate(organization, pebble, target_host, price=Decimal("1100"))
    deposit.top_up(ca_account=cert.ca_account, amount=Decimal("500"), note="too little")
    worker = celery_processes.worker(**worker_env)

    renewal.scan()
    wait_for(finished(cert), 60, "the refused renewal", worker)
    refused = run_of(cert)
    assert refused.status == RenewalRun.Status.INSUFFICIENT_DEPOSIT
    assert "600" in refused.error  # 1100 - 500 missing
    assert refused.acme_order_url == ""  # no ACME order was placed
    notices = Notification.objects.filter(kind=Notification.Kind.DEPOSIT_INSUFFICIENT,
                                          recipient="owner@example.test")
    # The alert is mailed after the run's end is committed: a moment later.
    wait_for(lambda: notices.count() == 1, 10, "the deposit alert", worker)
    renewal.scan()  # held: nothing starts, nothing is sent again
    assert notices.count() == 1

    deposit.top_up(ca_account=cert.ca_account, amount=Decimal("5000"), note="top-up")
    renewal.scan()
    wait_for(finished(cert, after=refused.pk), 90, "the renewal after the top-up", worker)
    assert run_of(cert).status == RenewalRun.Status.SUCCEEDED
    assert cert.ca_account.balance() == Decimal("4400")
