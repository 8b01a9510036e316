"""Where a deployment's CPU goes: N certificates queued for one host and
installed in one batch (one session, one config test, one reload, a TLS check
each), against the same N installed one at a time; cProfile with CPU time, in
this process. The versions are self-signed (deployment does not care who
issued them), so no CA is involved.

    .venv/bin/python -m bench.profile_deploy [--certificates 20]
"""

import argparse
import cProfile
import datetime
import io
import pstats
import time

from .env import VAR, configure, machine, reset_database


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--certificates", "-n", type=int, default=20)
    parser.add_argument("--top", type=int, default=30)
    args = parser.parse_args(argv)
    configure()
    reset_database()
    from django.conf import settings

    from certificates.models import TargetHost

    from .testbed import Testbed, portal_objects

    print(f"== Where a deployment's CPU goes "
          f"({datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC)")
    print(f"   machine: {machine()}")
    settings.DEPLOY_TLS_GRACE_SECONDS = 5
    # The other runs here are open but never issuing: nothing to wait for.
    settings.DEPLOY_BATCH_LINGER_SECONDS = 0
    with Testbed(hosts=1, certificates=args.certificates) as bed:
        certificates = portal_objects(bed)
        [host] = TargetHost.objects.all()
        results = {mode: _measure(mode, host, certificates)
                   for mode in ("warm-up", "one at a time", "one batch")}
    _report(results, args)


def _new_runs(certificates):
    """A fresh self-signed version of each certificate, and a deploy-only run of
    it claimed by a worker."""
    from certificates.models import Certificate, CertificateVersion, RenewalRun
    from certificates.renewal import lifecycle
    from testbed import certs

    runs = []
    for certificate in certificates:
        key, cert = certs.self_signed(certificate.common_name)
        version = CertificateVersion.from_pem(
            certificate=certificate, chain_pem=certs.cert_pem(cert),
            private_key_pem=certs.key_pem(key))
        version.save()
        Certificate.objects.filter(pk=certificate.pk).update(current_version=version)
        opened = lifecycle.open_run(certificate_id=certificate.pk,
                                    trigger=RenewalRun.Trigger.MANUAL,
                                    intent=RenewalRun.Intent.DEPLOY)
        runs.append(lifecycle.claim(opened.pk))
    return runs


def _to_deploying(run):
    from certificates.hosts import deployment
    from certificates.models import Certificate
    from certificates.renewal import lifecycle

    certificate = Certificate.objects.select_related("current_version").get(
        pk=run.certificate_id)
    lifecycle.to_deploying(run, deployment.requests_for(run, certificate))


def _deploy_and_conclude(host, runs):
    # What the deployment queue's worker does (drain), then the conclusion each
    # run's task would run.
    from certificates import renewal
    from certificates.hosts import deployment

    deployment.drain(host)
    for run in runs:
        renewal.conclude(run.pk)


def _measure(mode, host, certificates):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext
    from django.utils import timezone

    from certificates.models import DeployRequest, RenewalRun, TargetHost

    runs = _new_runs(certificates)
    profile = cProfile.Profile(time.process_time)
    cpu0, wall0 = time.process_time(), time.perf_counter()
    with CaptureQueriesContext(connection) as queries:
        if mode == "one batch":
            # Held while every run queues, as when they finish issuing together.
            TargetHost.objects.filter(pk=host.pk).update(
                deploy_lock_owner="bench",
                deploy_locked_until=timezone.now() + datetime.timedelta(minutes=5))
            for run in runs:
                _to_deploying(run)
            TargetHost.objects.filter(pk=host.pk).update(deploy_lock_owner="",
                                                         deploy_locked_until=None)
            profile.enable()
            _deploy_and_conclude(host, runs)
            profile.disable()
        else:
            profile.enable()
            for run in runs:
                _to_deploying(run)
                _deploy_and_conclude(host, [run])
            profile.disable()
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    done = RenewalRun.objects.filter(pk__in=[r.pk for r in runs],
                                     status=RenewalRun.Status.SUCCEEDED).count()
    if done != len(runs) or DeployRequest.objects.exists():
        raise SystemExit(f"{mode}: {done}/{len(runs)} runs succeeded")
    return cpu, wall, len(queries), profile


def _report(results, args):
    n = args.certificates
    for mode in ("one at a time", "one batch"):
        cpu, wall, queries, _profile = results[mode]
        print(f"   {mode:14}: {n} certificates deployed and verified in {wall:.2f} s wall, "
              f"{cpu * 1000 / n:.1f} ms of this process's CPU and {queries / n:.1f} SQL "
              "queries per certificate")
    profile = results["one batch"][3]
    path = VAR / "deploy.prof"
    profile.dump_stats(path)
    print(f"   full profile of the batch: {path}")
    for sort in ("cumulative", "tottime"):
        out = io.StringIO()
        pstats.Stats(profile, stream=out).strip_dirs().sort_stats(sort).print_stats(args.top)
        text = out.getvalue()
        print(f"-- the batch, top {args.top} by {sort} CPU time --")
        print(text[text.find("   ncalls"):].rstrip())


if __name__ == "__main__":
    main()
