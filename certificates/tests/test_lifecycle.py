"""The run lifecycle (certificates/renewal/lifecycle.py) against the database alone:
every allowed transition takes, every other one is refused, and a worker whose
lease ran out cannot change a run another worker took up since."""

import datetime
import itertools
import time

import pytest
from django.utils import timezone

from certificates.models import Deployment, DeployRequest, RenewalRun, TargetHost
from certificates.renewal import lifecycle
from certificates.tests import factories
from certificates.tests.factories import make_current, new_version

Status = RenewalRun.Status
ALL = list(Status)


@pytest.fixture
def certificate(organization):
    return factories.certificate(organization, factories.ca_account(organization),
                                 common_name="life.example.test")


def run_in(certificate, status, *, attempts=1, lease=datetime.timedelta(minutes=1)):
    RenewalRun.objects.filter(certificate=certificate).delete()
    return RenewalRun.objects.create(certificate=certificate, trigger=RenewalRun.Trigger.MANUAL,
                                     status=status, attempts=attempts,
                                     lease_until=timezone.now() + lease)


def status_of(run) -> str:
    return RenewalRun.objects.values_list("status", flat=True).get(pk=run.pk)


def move(run, to) -> bool:
    """The lifecycle's function for a move from the run's status to ``to``."""
    if to == Status.RUNNING:
        return lifecycle.claim(run.pk) is not None
    if to == Status.QUEUED:  # only recovery sends a run back, once its lease ran out
        RenewalRun.objects.filter(pk=run.pk).update(
            lease_until=timezone.now() - datetime.timedelta(seconds=1))
        return run.pk in lifecycle.requeue_lost()
    if to == Status.DEPLOYING:
        return lifecycle.to_deploying(run)
    return lifecycle.finish(run, to, error="why")


ALLOWED = [(before, after) for before, afters in lifecycle.ALLOWED.items() for after in afters]
FORBIDDEN = [(before, after) for before, after in itertools.product(ALL, ALL)
             if (before, after) not in ALLOWED and before != after]


@pytest.mark.django_db
@pytest.mark.parametrize(("before", "after"), ALLOWED)
def test_every_allowed_transition_takes(certificate, before, after):
    run = run_in(certificate, before)

    assert move(run, after)

    assert status_of(run) == after
    run.refresh_from_db()
    if after in RenewalRun.FINAL:
        assert run.finished_at is not None and run.lease_until is None
        assert run.error == "why"
    else:
        assert run.lease_until > timezone.now()


@pytest.mark.django_db
@pytest.mark.parametrize(("before", "after"), FORBIDDEN)
def test_every_other_transition_is_refused(certificate, before, after):
    run = run_in(certificate, before)

    assert not move(run, after)

    assert status_of(run) == before


@pytest.mark.django_db
def test_the_walk_covers_every_status_and_ends_only_in_final_ones():
    reachable = {Status.QUEUED} | {after for _before, after in ALLOWED}
    assert reachable == set(ALL)
    assert not any(before in RenewalRun.FINAL for before, _after in ALLOWED)
    with pytest.raises(lifecycle.NotAllowed):
        lifecycle.finish(RenewalRun(pk=1), Status.DEPLOYING)


@pytest.mark.django_db
def test_a_worker_whose_lease_ran_out_cannot_overwrite_the_newer_attempt(certificate):
    run_in(certificate, Status.QUEUED, attempts=0)
    first = lifecycle.claim(RenewalRun.objects.get(certificate=certificate).pk)
    RenewalRun.objects.filter(pk=first.pk).update(
        lease_until=timezone.now() - datetime.timedelta(seconds=1))
    second = lifecycle.claim(first.pk)  # the message came back to another worker
    assert (first.attempts, second.attempts) == (1, 2)

    assert not lifecycle.extend_lease(first)
    assert not lifecycle.to_deploying(first)
    assert not lifecycle.finish(first, Status.FAILED, error="stale")
    assert lifecycle.to_deploying(second)
    assert not lifecycle.finish(first, Status.SUCCEEDED)
    assert lifecycle.finish(second, Status.SUCCEEDED)

    second.refresh_from_db()
    assert (second.status, second.error) == (Status.SUCCEEDED, "")


@pytest.mark.django_db
def test_a_running_run_with_a_live_lease_is_not_claimed_twice(certificate):
    run = run_in(certificate, Status.QUEUED, attempts=0)
    assert lifecycle.claim(run.pk) is not None
    assert lifecycle.claim(run.pk) is None


@pytest.mark.django_db
def test_a_lost_run_is_requeued_once_per_lease(certificate):
    run = run_in(certificate, Status.RUNNING, lease=-datetime.timedelta(seconds=1))

    assert lifecycle.requeue_lost() == [run.pk]
    assert lifecycle.requeue_lost() == []

    run.refresh_from_db()
    assert run.status == Status.QUEUED
    assert run.lease_until > timezone.now() + datetime.timedelta(minutes=10)  # a queue's wait


@pytest.mark.django_db
def test_a_deploying_run_is_drained_again_never_requeued(certificate, tmp_path, organization):
    host = factories.host(organization, factories.ssh_keypair(tmp_path)[0])
    row = Deployment.objects.create(certificate=certificate, host=host)
    version = new_version(certificate, "life.example.test")
    make_current(certificate, version)
    run = run_in(certificate, Status.DEPLOYING, lease=-datetime.timedelta(seconds=1))
    DeployRequest.objects.create(host=host, deployment=row, version=version, run=run,
                                 requested_at=timezone.now() - datetime.timedelta(hours=1))

    # Its host is busy with an earlier batch: it waits its turn, with a new lease.
    TargetHost.objects.filter(pk=host.pk).update(
        deploy_lock_owner="someone", deploy_locked_until=timezone.now() + datetime.timedelta(1))
    assert lifecycle.redrive_deploying() == []
    assert lifecycle.requeue_lost() == []
    run.refresh_from_db()
    assert run.status == Status.DEPLOYING and run.lease_until > timezone.now()

    # Nobody holds its host: it is returned, to be drained again.
    TargetHost.objects.filter(pk=host.pk).update(deploy_lock_owner="", deploy_locked_until=None)
    RenewalRun.objects.filter(pk=run.pk).update(
        lease_until=timezone.now() - datetime.timedelta(seconds=1))
    assert lifecycle.redrive_deploying() == [run.pk]
    assert status_of(run) == Status.DEPLOYING
    assert DeployRequest.objects.filter(run=run).count() == 1


@pytest.mark.django_db(transaction=True)
def test_a_live_worker_keeps_renewing_its_short_lease(certificate, settings):
    settings.RENEWAL_LEASE_SECONDS = 1.5  # renewed every half second
    run = lifecycle.claim(run_in(certificate, Status.QUEUED, attempts=0).pk)
    first = run.lease_until

    with lifecycle.keep_lease(run):
        time.sleep(2.5)  # longer than the lease: without renewal it would have run out
        run.refresh_from_db()
        assert run.lease_until > first and run.lease_until > timezone.now()
        assert lifecycle.requeue_lost() == []

    stopped = RenewalRun.objects.values_list("lease_until", flat=True).get(pk=run.pk)
    time.sleep(1)
    assert RenewalRun.objects.values_list("lease_until", flat=True).get(pk=run.pk) == stopped


@pytest.mark.django_db
def test_a_run_whose_worker_is_gone_says_it_waits_to_be_taken_up(certificate):
    run = run_in(certificate, Status.RUNNING, lease=-datetime.timedelta(seconds=5))
    assert run.is_stalled
    assert run.get_progress_display() == "Waiting to be taken up again"
    live = run_in(certificate, Status.DEPLOYING)
    assert not live.is_stalled and live.get_progress_display() == "Deploying"
