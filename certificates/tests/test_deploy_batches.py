"""Several certificates queued for one host are installed together: one session,
one config test, one reload; one bad certificate does not hold back the others."""

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from certificates.hosts import deployment, leases
from certificates.models import (
    Deployment,
    DeployRequest,
    RenewalRun,
    TargetHost,
)

from . import factories
from .factories import make_current, new_version
from .installing import (
    DEPLOY_STEPS,
    DEPLOYED,
    FAILED,
    ROLLED_BACK,
    SITES,
    backups,
    conclude,
    queue_and_release,
    site_certificates,
)

# -- several certificates on one host: queued, then installed together -------------


@pytest.mark.django_db(transaction=True)
def test_certificates_queued_for_one_host_are_installed_in_one_session_with_one_reload(
        organization, ca, shared_host, target_host):
    runs, versions = site_certificates(organization, ca, shared_host, SITES)

    outcomes = queue_and_release(shared_host, runs)

    assert {pk: o.status for pk, o in outcomes.items()} == dict.fromkeys(versions, DEPLOYED)
    for pk, version in versions.items():
        assert outcomes[pk].served_fingerprint == version.fingerprint_sha256
        target_host.wait_for_served_leaf(version.fingerprint_sha256,
                                         name=version.certificate.common_name)
    assert shared_host.reloads() == 1
    [batch] = backups(target_host)
    assert sorted(p.name for p in batch.iterdir()) == sorted(
        f"{v.certificate.common_name}-{v.certificate.pk}" for v in versions.values())
    for run in runs:
        assert list(run.steps.values_list("name", "status")) == DEPLOY_STEPS
        run.refresh_from_db()
        assert run.log == f"{shared_host.name}: deployed\n"
    assert not DeployRequest.objects.filter(finished_at__isnull=True).exists()  # all answered
    for run in runs:
        assert conclude(run).status == RenewalRun.Status.SUCCEEDED, run.error
    assert not DeployRequest.objects.exists()  # a concluded run's requests are gone
    assert set(Deployment.objects.values_list("last_status", "served")) == {(DEPLOYED, True)}
    shared_host.refresh_from_db()
    assert shared_host.deploy_lock_owner == ""


@pytest.mark.django_db
def test_a_batch_writes_each_phases_steps_together_not_one_insert_per_certificate(
        organization, ca, shared_host):
    runs, versions = site_certificates(organization, ca, shared_host, SITES)
    for run in runs:
        DeployRequest.objects.create(
            host=shared_host, version=versions[run.certificate_id], run=run,
            deployment=Deployment.objects.get(certificate_id=run.certificate_id))
    TargetHost.objects.filter(pk=shared_host.pk).update(
        deploy_lock_owner="me", deploy_locked_until=timezone.now() + timedelta(minutes=5))

    with CaptureQueriesContext(connection) as queries:
        tried, _runs = deployment.install_queued(shared_host, owner="me")

    assert tried == len(SITES)
    inserts = [q for q in queries.captured_queries
               if q["sql"].startswith('INSERT INTO "certificates_renewalstep"')]
    phases = ["connect", "backup", "upload", "install", "config_test", "reload", "tls_check",
              "cleanup"]
    # One per phase at most (a phase slower than STEP_HOLD_SECONDS may split one; a
    # phase that may take long is written as it starts, with the one before it);
    # one per certificate and step would be 33.
    assert len(inserts) <= len(phases) + 2, [q["sql"][:80] for q in inserts]
    for run in runs:
        steps = list(run.steps.order_by("at", "pk"))
        assert [(s.name, s.status) for s in steps] == DEPLOY_STEPS
        assert [s.at for s in steps] == sorted(s.at for s in steps)


@pytest.mark.django_db(transaction=True)
def test_a_certificate_that_breaks_the_config_test_does_not_hold_back_the_others(
        organization, ca, shared_host, target_host):
    bad = "b.example.test"
    before = (target_host.ssl_dir / "sites" / bad / "privkey.pem").read_bytes()
    served_before = target_host.served_leaf_sha256(bad)
    # A key that does not belong to the leaf: nginx -t refuses the pair.
    runs, versions = site_certificates(
        organization, ca, shared_host, SITES,
        **{bad: {"private_key_pem": factories.self_signed()[0]}})

    outcomes = queue_and_release(shared_host, runs)

    by_name = {versions[pk].certificate.common_name: o for pk, o in outcomes.items()}
    assert by_name[bad].status == ROLLED_BACK and not by_name[bad].transient
    assert "key values mismatch" in by_name[bad].error  # nginx's own words
    assert (target_host.ssl_dir / "sites" / bad / "privkey.pem").read_bytes() == before
    target_host.wait_for_served_leaf(served_before, name=bad)
    for pk, version in versions.items():
        name = version.certificate.common_name
        if name != bad:
            assert outcomes[pk].ok, outcomes[pk].error
            target_host.wait_for_served_leaf(version.fingerprint_sha256, name=name)
    # Together: the config test failed, so no reload; then each alone, one reload
    # for each good one.
    assert shared_host.reloads() == 2
    for run in runs:
        assert run.steps.filter(name="retry", status="started").exists()


@pytest.mark.django_db(transaction=True)
def test_a_certificate_the_server_does_not_serve_is_rolled_back_alone(
        organization, ca, shared_host, target_host, fast_grace):
    # Files of its own, but no server block: nginx answers its name with another leaf.
    stray = "d.example.test"
    (target_host.ssl_dir / "sites" / stray).mkdir()
    runs, versions = site_certificates(organization, ca, shared_host, [*SITES, stray])

    outcomes = queue_and_release(shared_host, runs)

    by_name = {versions[pk].certificate.common_name: o for pk, o in outcomes.items()}
    assert (by_name[stray].status, by_name[stray].error_kind) == (ROLLED_BACK, "NotServed")
    assert list((target_host.ssl_dir / "sites" / stray).iterdir()) == []  # new files gone
    for name in SITES:
        assert by_name[name].ok, by_name[name].error
    for version in versions.values():
        if version.certificate.common_name in SITES:
            target_host.wait_for_served_leaf(version.fingerprint_sha256,
                                             name=version.certificate.common_name)
    assert shared_host.reloads() == 2  # the batch's, and the rollback's


@pytest.mark.django_db(transaction=True)
def test_a_request_for_an_older_version_is_answered_with_the_newer_one_deployed(
        organization, ca, shared_host, target_host):
    name = SITES[0]
    certificate = factories.certificate(organization, ca, common_name=name, sans=[name])
    row = Deployment.objects.create(certificate=certificate, host=shared_host)
    older, newer = new_version(certificate, name), new_version(certificate, name)
    make_current(certificate, newer)
    for version in (newer, older):
        DeployRequest.objects.create(host=shared_host, deployment=row, version=version)
    assert leases.take(shared_host, "this-test")
    try:
        assert deployment.install_queued(shared_host, owner="this-test") == (2, set())
    finally:
        leases.release(shared_host, "this-test")

    answered = {r.version_id: r for r in DeployRequest.objects.all()}
    assert (answered[newer.pk].status, answered[older.pk].status) == (DEPLOYED, FAILED)
    assert answered[older.pk].error_kind == "Superseded"
    assert newer.serial in answered[older.pk].error
    target_host.wait_for_served_leaf(newer.fingerprint_sha256, name=name)
    row.refresh_from_db()
    assert row.last_version == newer
    assert shared_host.reloads() == 1
    assert all(r.finished_at for r in answered.values())
