"""A run's deployment through the one protocol: requests queued per host, drained
by whoever holds the host, the run concluded by a task of its own after the host
is let go; many hosts at once; manage.py deploy."""

import time
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from certificates import renewal
from certificates.hosts import deployment
from certificates.hosts.deployment import NothingToDeploy
from certificates.models import (
    Deployment,
    DeployRequest,
    Notification,
    RenewalRun,
    TargetHost,
)
from certificates.renewal import lifecycle
from certificates.steps import Step

from . import factories
from .factories import make_current, new_version, portal_host
from .installing import (
    DEPLOYED,
    FAILED,
    SITES,
    closing_thread,
    deploying_run,
    files_on,
    hold,
    install_now,
    let_go,
    live_files,
    run_steps,
    site_certificates,
)

# -- many hosts, and one host at a time -------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_three_hosts_at_once_with_one_down_the_two_others_succeed(
        organization, ca, target_host_factory):
    testbeds = [target_host_factory() for _ in range(3)]
    try:
        hosts = [portal_host(organization, testbed) for testbed in testbeds]
        certificate = factories.certificate(organization, ca, common_name="www.example.test",
                                            sans=["www.example.test"])
        for host in hosts:
            Deployment.objects.create(certificate=certificate, host=host)
        version = new_version(certificate, "www.example.test")
        make_current(certificate, version)
        testbeds[1].stop_sshd()

        run = renewal.deploy_inline(certificate_id=certificate.pk)

        assert run.status == RenewalRun.Status.FAILED and run.failure_kind == "DeploymentFailed"
        assert run.error_class == "transient"  # the one host down is a transient failure
        assert hosts[1].name in run.error and hosts[0].name not in run.error
        for testbed in (testbeds[0], testbeds[2]):
            testbed.wait_for_served_leaf(version.fingerprint_sha256)
        statuses = dict(Deployment.objects.values_list("host__name", "last_status"))
        assert statuses == {hosts[0].name: DEPLOYED, hosts[1].name: FAILED,
                            hosts[2].name: DEPLOYED}
        failed_steps = run.steps.filter(status="failed")
        assert list(failed_steps.values_list("name", "host")) == [("connect", hosts[1].pk)]
        assert run.steps.filter(host=hosts[0], name="tls_check", status="done").exists()
    finally:
        for testbed in testbeds:
            testbed.stop()



# -- a run's deployment, queued: nobody waits for a busy host ------------------------


@pytest.mark.django_db(transaction=True)
def test_a_runs_deployment_to_a_busy_host_is_queued_and_concluded_by_whoever_drains_it(
        host, target_host, version, conclusions):
    Deployment.objects.create(certificate=version.certificate, host=host)
    hold(host)
    run = deploying_run(version.certificate)

    assert renewal.deploy(run_id=run.pk) is None  # returns at once: the host is busy

    run.refresh_from_db()
    assert run.status == RenewalRun.Status.DEPLOYING
    [queued] = DeployRequest.objects.all()
    assert (queued.run_id, queued.version_id, queued.finished_at) == (run.pk, version.pk, None)

    let_go(host)
    deployment.drain(host)  # what the holder does after its own batch

    run.refresh_from_db()
    assert run.status == RenewalRun.Status.SUCCEEDED, run.error
    assert conclusions == [(run.pk, True)]
    target_host.wait_for_served_leaf(version.fingerprint_sha256)
    assert not DeployRequest.objects.exists()
    assert run.steps.filter(name="tls_check", status="done", host=host).exists()


@pytest.mark.django_db(transaction=True)
def test_a_run_on_two_hosts_is_concluded_when_the_last_one_answers(
        organization, host, target_host, version, target_host_factory, fast_grace,
        conclusions, owner):
    owner.email = "owner@example.test"
    owner.save()
    other_testbed = target_host_factory()
    try:
        # A reload there changes nothing: the new leaf is never served, and the run fails.
        other = portal_host(organization, other_testbed, reload_command="true")
        for target in (host, other):
            Deployment.objects.create(certificate=version.certificate, host=target)
        hold(other)
        run = deploying_run(version.certificate)

        renewal.deploy(run_id=run.pk)

        run.refresh_from_db()
        assert run.status == RenewalRun.Status.DEPLOYING  # one host answered, one to go
        assert conclusions == []
        target_host.wait_for_served_leaf(version.fingerprint_sha256)

        let_go(other)
        deployment.drain(other)

        run.refresh_from_db()
        assert run.status == RenewalRun.Status.FAILED
        assert other.name in run.error and host.name not in run.error
        told = list(Notification.objects.filter(
            kind=Notification.Kind.NOT_SERVED,
            certificate=version.certificate).values_list("recipient", flat=True))
        assert told and len(told) == len(set(told))  # once to each person
        # The failure's mail went out from the conclusion, enqueued with every host free.
        assert conclusions == [(run.pk, True)]
        assert Notification.objects.filter(kind=Notification.Kind.RENEWAL_FAILED,
                                           certificate=version.certificate).exists()
        assert renewal.conclude(run.pk) is None  # concluded once
    finally:
        other_testbed.stop()


@pytest.mark.django_db(transaction=True)
def test_a_batch_waits_for_a_certificate_of_the_host_that_is_still_being_issued(
        organization, ca, shared_host, target_host, settings, conclusions):
    settings.DEPLOY_BATCH_LINGER_SECONDS = 30  # the issuance below ends long before
    runs, versions = site_certificates(organization, ca, shared_host, SITES[:2])
    issuing, ready = runs
    hold(shared_host)
    ready = deploying_run(run=ready)  # queued: the host is busy
    issuing = lifecycle.claim(issuing.pk)  # running: still being issued
    let_go(shared_host)

    drainer = closing_thread(deployment.drain, shared_host)
    drainer.start()
    time.sleep(0.5)  # the first one waits: the second is still being issued
    assert not run_steps(ready, "reload")
    assert lifecycle.to_deploying(issuing, deployment.requests_for(
        issuing, issuing.certificate))  # issued: it joins the waiting batch
    drainer.join(timeout=60)

    for run in runs:
        run.refresh_from_db()
        assert run.status == RenewalRun.Status.SUCCEEDED, run.error
    assert shared_host.reloads() == 1


@pytest.mark.django_db(transaction=True)
def test_a_run_behind_a_host_queue_deeper_than_ten_minutes_finishes_without_a_requeue(
        host, target_host, version, conclusions):
    Deployment.objects.create(certificate=version.certificate, host=host)
    hold(host)  # an earlier batch on the host, still going
    run = deploying_run(version.certificate)
    long_ago = timezone.now() - timedelta(minutes=25)
    DeployRequest.objects.filter(run=run).update(requested_at=long_ago)
    RenewalRun.objects.filter(pk=run.pk).update(lease_until=long_ago)  # no step for a while

    assert renewal.recover_stale_runs() == []  # it waits its turn: not lost

    run.refresh_from_db()
    assert (run.status, run.attempts) == (RenewalRun.Status.DEPLOYING, 1)
    assert DeployRequest.objects.filter(run=run, finished_at__isnull=True).count() == 1
    let_go(host)
    deployment.drain(host)
    run.refresh_from_db()
    assert run.status == RenewalRun.Status.SUCCEEDED, run.error
    assert (run.attempts, conclusions) == (1, [(run.pk, True)])


@pytest.mark.django_db
def test_a_host_busy_with_another_deployment_keeps_the_request_for_its_holder(
        host, target_host, version):
    until = timezone.now() + timedelta(hours=1)
    TargetHost.objects.filter(pk=host.pk).update(deploy_lock_owner="another-worker",
                                                 deploy_locked_until=until)
    before = files_on(target_host)

    assert install_now(version, host) is None  # nobody waits: the holder installs it

    assert files_on(target_host) == before
    assert DeployRequest.objects.filter(host=host, finished_at__isnull=True).count() == 1
    host.refresh_from_db()
    assert host.deploy_lock_owner == "another-worker"  # not ours to release


@pytest.mark.django_db
def test_the_lease_of_a_dead_worker_runs_out(host, version):
    TargetHost.objects.filter(pk=host.pk).update(
        deploy_lock_owner="dead-worker", deploy_locked_until=timezone.now() - timedelta(1))

    assert install_now(version, host).ok


@pytest.mark.django_db
def test_a_certificate_without_a_version_has_nothing_to_deploy(certificate):
    with pytest.raises(NothingToDeploy):
        renewal.deploy_now(certificate_id=certificate.pk)


# -- manage.py deploy ----------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_manage_py_deploy_prints_each_step_and_deploys(host, target_host, version, capsys):
    Deployment.objects.create(certificate=version.certificate, host=host)

    call_command("deploy", version.certificate.common_name)

    out = capsys.readouterr().out
    for step in ("connect", "backup", "upload", "install", "config_test", "reload",
                 "tls_check", "cleanup"):
        assert f"{host.name}  {Step(step).label}: " in out  # in words
    target_host.wait_for_served_leaf(version.fingerprint_sha256)


@pytest.mark.django_db(transaction=True)
def test_manage_py_deploy_to_one_host_leaves_the_others_alone(
        organization, host, version, target_host_factory):
    other_testbed = target_host_factory()
    try:
        other = portal_host(organization, other_testbed)
        for target in (host, other):
            Deployment.objects.create(certificate=version.certificate, host=target)
        before = live_files(other_testbed)

        call_command("deploy", str(version.certificate.pk), "--host", host.name)

        assert live_files(other_testbed) == before
        statuses = dict(Deployment.objects.values_list("host", "last_status"))
        assert statuses == {host.pk: DEPLOYED, other.pk: Deployment.Status.PENDING}
    finally:
        other_testbed.stop()


@pytest.mark.django_db(transaction=True)
def test_manage_py_deploy_fails_when_a_host_does_not_take_the_certificate(
        host, target_host, version, capsys):
    Deployment.objects.create(certificate=version.certificate, host=host)
    target_host.stop_sshd()

    with pytest.raises(CommandError):
        call_command("deploy", version.certificate.common_name)

    assert f"{host.name}  {Step.CONNECT.label}: " in capsys.readouterr().out
