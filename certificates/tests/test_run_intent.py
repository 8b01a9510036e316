"""What a run is for, and how it ends: a retry keeps the intent of the run it
retries, a run that did nothing never succeeds, a successful run of any intent
that leaves every host serving clears the failure, a ledger charge is one step,
and a failure is mailed once per cause."""

import datetime
from decimal import Decimal

import pytest
from django.utils import timezone

from certificates import renewal
from certificates.models import (
    Certificate,
    Deployment,
    DeployRequest,
    Notification,
    RenewalRun,
)
from certificates.renewal import deposit, lifecycle
from certificates.renewal.issuance import IssuanceFailed
from certificates.tests import factories
from certificates.tests.factories import make_current, new_version

Intent, Status = RenewalRun.Intent, RenewalRun.Status


@pytest.fixture
def certificate(organization, owner):
    owner.email = "owner@example.test"
    owner.save()
    certificate = factories.certificate(organization, factories.ca_account(organization),
                                        common_name="intent.example.test")
    make_current(certificate, new_version(certificate, "intent.example.test"))
    # Valid and not due: only a retry brings it back.
    Certificate.objects.filter(pk=certificate.pk).update(
        renew_after=timezone.now() + datetime.timedelta(days=30))
    return Certificate.objects.get(pk=certificate.pk)


def ended_run(certificate, status, *, intent=Intent.ISSUE, trigger=RenewalRun.Trigger.MANUAL,
              version=None):
    return RenewalRun.objects.create(certificate=certificate, trigger=trigger, intent=intent,
                                     status=status, version=version, finished_at=timezone.now())


def failing(certificate):
    Certificate.objects.filter(pk=certificate.pk).update(
        failure_count=1, next_attempt_at=timezone.now() - datetime.timedelta(seconds=1))


def scheduled_run(certificate) -> RenewalRun:
    [run_id] = renewal.scan()
    run = RenewalRun.objects.get(pk=run_id)
    assert run.certificate_id == certificate.pk
    return run


@pytest.mark.django_db
def test_a_retry_of_a_persons_renewal_that_failed_before_issuing_issues(certificate):
    ended_run(certificate, Status.FAILED)  # "renew now", the CA down
    failing(certificate)

    assert scheduled_run(certificate).intent == Intent.ISSUE


@pytest.mark.django_db
def test_a_retry_of_a_renewal_held_for_the_deposit_issues(certificate):
    ended_run(certificate, Status.INSUFFICIENT_DEPOSIT)
    Certificate.objects.filter(pk=certificate.pk).update(
        held_for_deposit=True, next_attempt_at=timezone.now() - datetime.timedelta(seconds=1))

    assert scheduled_run(certificate).intent == Intent.ISSUE


@pytest.mark.django_db
def test_a_retry_of_a_renewal_that_issued_and_failed_to_deploy_only_deploys(certificate):
    ended_run(certificate, Status.FAILED, trigger=RenewalRun.Trigger.SCHEDULE,
              version=certificate.current_version)
    failing(certificate)

    assert scheduled_run(certificate).intent == Intent.DEPLOY


@pytest.mark.django_db
def test_a_retry_of_a_deploy_only_run_deploys(certificate):
    ended_run(certificate, Status.FAILED, intent=Intent.DEPLOY)
    failing(certificate)

    assert scheduled_run(certificate).intent == Intent.DEPLOY


@pytest.mark.django_db
def test_a_certificate_whose_renewal_time_came_issues(certificate):
    ended_run(certificate, Status.FAILED, intent=Intent.DEPLOY)
    Certificate.objects.filter(pk=certificate.pk).update(
        renew_after=timezone.now() - datetime.timedelta(seconds=1))

    assert scheduled_run(certificate).intent == Intent.ISSUE


def deploying(certificate, requests=()):
    run = lifecycle.claim(lifecycle.open_run(certificate_id=certificate.pk,
                                             trigger=RenewalRun.Trigger.SCHEDULE,
                                             intent=Intent.DEPLOY).pk)
    assert lifecycle.to_deploying(run, requests)
    return run


@pytest.mark.django_db
def test_a_deploy_only_run_that_deployed_nothing_does_not_succeed(certificate):
    run = deploying(certificate)

    renewal.conclude(run.pk)

    run.refresh_from_db()
    assert run.status == Status.FAILED and run.failure_kind == "NothingToDeploy"


def served_request(certificate, run, host, *, ok=True):
    row, _created = Deployment.objects.get_or_create(certificate=certificate, host=host)
    request = DeployRequest(host=host, deployment=row, version=certificate.current_version,
                            run=run, finished_at=timezone.now(),
                            status=Deployment.Status.DEPLOYED if ok else Deployment.Status.FAILED,
                            error="" if ok else "nginx: [emerg]", error_kind="" if ok else
                            "CommandFailed")
    if ok:  # what the drain writes on the row when the host serves the version
        Deployment.objects.filter(pk=row.pk).update(
            last_version=certificate.current_version, served=True,
            last_status=Deployment.Status.DEPLOYED)
    return request


@pytest.mark.django_db
def test_a_successful_deploy_only_run_clears_the_failure_when_every_host_serves(
        certificate, organization, tmp_path):
    host = factories.host(organization, factories.ssh_keypair(tmp_path)[0])
    failing(certificate)
    run = deploying(certificate)
    served_request(certificate, run, host).save()

    renewal.conclude(run.pk)

    run.refresh_from_db()
    certificate.refresh_from_db()
    assert run.status == Status.SUCCEEDED
    assert (certificate.failure_count, certificate.next_attempt_at) == (0, None)


@pytest.mark.django_db
def test_a_success_on_one_host_leaves_the_failure_while_another_does_not_serve(
        certificate, organization, tmp_path):
    key = factories.ssh_keypair(tmp_path)[0]
    fixed, broken = (factories.host(organization, key, name=name) for name in ("a", "b"))
    Deployment.objects.create(certificate=certificate, host=broken)  # still failing there
    failing(certificate)
    run = deploying(certificate)
    served_request(certificate, run, fixed).save()

    renewal.conclude(run.pk)

    certificate.refresh_from_db()
    assert RenewalRun.objects.get(pk=run.pk).status == Status.SUCCEEDED
    assert certificate.failure_count == 1


@pytest.mark.django_db
def test_a_run_taken_up_again_records_one_charge_step_for_one_charge(certificate):
    account = certificate.ca_account
    account.price = Decimal("1100")
    account.save()
    deposit.top_up(ca_account=account, amount=Decimal("5000"), note="test")
    run = lifecycle.claim(lifecycle.open_run(certificate_id=certificate.pk,
                                             trigger=RenewalRun.Trigger.MANUAL).pk)
    RenewalRun.objects.filter(pk=run.pk).update(version=certificate.current_version)
    run.refresh_from_db()

    renewal.charge(run)
    run.attempts = 2  # taken up again after the worker died past the charge
    renewal.charge(run)

    assert run.steps.filter(name="charge").count() == 1
    assert account.ledger.filter(kind="charge").count() == 1


def fail_with(certificate, kind, message):
    run = lifecycle.claim(lifecycle.open_run(certificate_id=certificate.pk,
                                             trigger=RenewalRun.Trigger.SCHEDULE).pk)
    renewal.fail(run, IssuanceFailed(message, transient=True, kind=kind))
    return run


@pytest.mark.django_db
def test_a_new_cause_of_failure_is_mailed_even_while_the_last_one_is(certificate, mailoutbox):
    def to_owner():
        return [m for m in mailoutbox if m.to == ["owner@example.test"]]

    fail_with(certificate, "HostKeyMismatch", "host a: the host key changed")
    fail_with(certificate, "HostKeyMismatch", "host a: the host key changed")
    assert len(to_owner()) == 1  # the same cause: once a day

    fail_with(certificate, "CommandFailed", "host b: nginx -t failed")

    assert len(to_owner()) == 2
    assert "nginx -t failed" in to_owner()[1].body
    events = set(Notification.objects.filter(
        kind=Notification.Kind.RENEWAL_FAILED).values_list("event", flat=True))
    assert len(events) == 2


@pytest.mark.django_db
def test_a_deploying_run_whose_conclusion_was_lost_is_concluded_when_drained_again(
        certificate, organization, tmp_path):
    host = factories.host(organization, factories.ssh_keypair(tmp_path)[0])
    run = deploying(certificate)
    served_request(certificate, run, host).save()  # answered; its conclusion never came

    # What recovery enqueues for it: nothing is left to drain, so it ends here.
    renewal.deploy(run_id=run.pk)

    run.refresh_from_db()
    assert (run.status, run.attempts) == (Status.SUCCEEDED, 1)
    assert not DeployRequest.objects.filter(run=run).exists()
