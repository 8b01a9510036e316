"""Installing a version on a host from a test, through the one protocol the
portal uses: a request queued for the host, drained here."""

from certificates import renewal
from certificates.hosts import deployment
from certificates.models import Deployment, DeployRequest, RenewalRun
from certificates.renewal import lifecycle


def install_now(version, host, run=None) -> deployment.Outcome | None:
    """Queue ``version`` for ``host`` (on behalf of ``run``), drain the host in
    this thread, and return the request's outcome; None if another holds the
    host (its holder installs the request with its next batch)."""
    row, _created = Deployment.objects.get_or_create(certificate=version.certificate, host=host)
    request = DeployRequest.objects.create(host=host, deployment=row, version=version, run=run)
    deployment.drain(host)
    request = DeployRequest.objects.select_related("host", "version").get(pk=request.pk)
    return deployment.outcome_of(request) if request.finished_at else None


def deploy_only_run(certificate, host_ids=None) -> RenewalRun:
    """A queued deploy-only run of the certificate."""
    return lifecycle.open_run(certificate_id=certificate.pk, trigger=RenewalRun.Trigger.MANUAL,
                              intent=RenewalRun.Intent.DEPLOY, hosts=host_ids)


def deploying_run(certificate=None, host_ids=None, *, run=None) -> RenewalRun:
    """A deploy-only run (or ``run``, queued) taken by a worker and moved to
    deploying, its requests queued on the certificate's hosts (or those of
    ``host_ids``), not drained."""
    run = lifecycle.claim((run or deploy_only_run(certificate, host_ids)).pk)
    assert lifecycle.to_deploying(run, deployment.requests_for(run, run.certificate, host_ids))
    return run


def outcomes_of(run) -> list[deployment.Outcome]:
    return [deployment.outcome_of(request) for request in DeployRequest.objects.filter(
        run=run, finished_at__isnull=False).select_related("host", "version")]


def conclude(run) -> RenewalRun:
    renewal.conclude(run.pk)
    run.refresh_from_db()
    return run
