"""Incident mode at scale: N certificates on M testbed hosts, first issued by the
portal (untimed), then all replaced by one incident -- issued by Pebble,
deployed over SSH, verified by TLS, and their old versions revoked -- timed
from the incident's start to the last verified replacement (and to the last
revocation); certbot on the same Pebble, one run after another, beside it.

    .venv/bin/python -m bench.incident -n 1000 -m 20 --certbot 10

The issue's size is 10,000 certificates on 100 hosts:

    .venv/bin/python -m bench.incident -n 10000 -m 100 --certbot 10
"""

import argparse
import datetime
import os
import time

from .env import configure, machine, reset_database, worker_environment
from .throughput import _AllWorkers, pebble_binary, run_certbot, verify_by_tls


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--certificates", "-n", type=int, default=1000)
    parser.add_argument("--hosts", "-m", type=int, default=20)
    parser.add_argument("--certbot", type=int, default=10)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--deploy-concurrency", type=int, default=12)
    parser.add_argument("--timeout", type=float, default=1800)
    parser.add_argument("--no-revoke", action="store_true",
                        help="replace without revoking the old versions")
    parser.add_argument("--pebble", choices=["patched", "debian"], default="patched")
    args = parser.parse_args(argv)
    from testbed.bind import HOST_NUMBERS

    if not 1 <= args.hosts <= len(HOST_NUMBERS):
        parser.error(f"--hosts must be 1..{len(HOST_NUMBERS)} (BIND's zone has "
                     f"127.0.0.{HOST_NUMBERS[0]}..{HOST_NUMBERS[-1]})")
    return args


def _wait(predicate, timeout: float, every: float = 0.5, tick=None) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        if tick is not None:
            tick()
        time.sleep(every)
    return False


def issue_first_versions(certificates, timeout: float) -> float:
    """What the incident replaces: every certificate issued and deployed once
    by the routine path (the scan), untimed as far as the incident goes; a
    failure is retried at once, twice at most."""
    from django.db.models import F
    from django.utils import timezone

    from certificates import renewal
    from certificates.models import Certificate, RenewalRun

    started = time.monotonic()
    for _round in range(3):
        run_ids = renewal.scan(limit=len(certificates))
        open_runs = RenewalRun.objects.filter(pk__in=run_ids, status__in=RenewalRun.OPEN)
        if not _wait(lambda runs=open_runs: not runs.exists(), timeout):
            raise SystemExit(f"the first issuance did not finish: {open_runs.count()} open")
        unserved = Certificate.objects.filter(pk__in=[c.pk for c in certificates]).exclude(
            deployments__served=True, deployments__last_version=F("current_version"))
        if not unserved.exists():
            return time.monotonic() - started
        print(f"   first issuance: {unserved.count()} to retry")
        unserved.update(next_attempt_at=timezone.now())
    raise SystemExit("the first issuance failed three times")


def run_incident(bed, args) -> dict:
    from django.db.models import Count, Max
    from django.utils import timezone

    from certificates.incidents import service
    from certificates.incidents.selection import Filter
    from certificates.models import IncidentCertificate, RenewalRun
    from fujissl_portal.celery import app

    from .cpu import Usage
    from .testbed import portal_objects
    from .workers import Workers

    certificates = portal_objects(bed)
    app.control.purge()
    env = {**worker_environment(), "ACME_CA_BUNDLE": str(bed.pebble.ca_bundle),
           "DEPLOY_TLS_GRACE_SECONDS": "5", "TLS_CHECK_TIMEOUT": "5"}
    groups = [Workers(count=1, pool="threads", concurrency=args.concurrency, env=env,
                      queues="celery,acme", label="acme"),
              Workers(count=1, pool="threads", concurrency=args.deploy_concurrency, env=env,
                      queues="deploy", label="deploy")]
    workers = _AllWorkers(groups)
    workers.start()
    usage = Usage()
    try:
        first = issue_first_versions(certificates, args.timeout)
        cpu_before = [group.cpu_seconds() for group in groups]
        usage.start()
        started = time.monotonic()
        incident = service.start(
            organization=certificates[0].organization, name="bench",
            chosen=Filter(ca_account_id=certificates[0].ca_account_id),
            deadline=timezone.now() + datetime.timedelta(minutes=15),
            revoke_old=not args.no_revoke)
        incident.refresh_from_db()

        def done() -> bool:
            return incident.__class__.objects.filter(pk=incident.pk,
                                                     status="completed").exists()

        # beat's scan runs the incident's pass (retries, missed revocations) each
        # RENEWAL_SCAN_SECONDS; here, every 5 s.
        last_pass = [time.monotonic()]

        def tick() -> None:
            if time.monotonic() - last_pass[0] > 5:
                service.advance(incident)
                last_pass[0] = time.monotonic()

        finished = _wait(done, args.timeout, tick=tick)
        wall = time.monotonic() - started
        usage.stop()
        cpu = [(group.label, group.cpu_seconds() - before)
               for group, before in zip(groups, cpu_before, strict=True)]
    finally:
        workers.stop()
    items = IncidentCertificate.objects.filter(incident=incident)
    times = items.aggregate(replaced=Max("replaced_at"), revoked=Max("revoked_at"))
    to_replaced = ((times["replaced"] - incident.created_at).total_seconds()
                   if times["replaced"] else None)
    to_revoked = ((times["revoked"] - incident.created_at).total_seconds()
                  if times["revoked"] else None)
    replaced = items.filter(replaced_at__isnull=False).count()
    revoked = items.filter(revoked_at__isnull=False).count()
    outcomes = dict(RenewalRun.objects.filter(incident=incident).values_list("status")
                    .annotate(n=Count("pk")).values_list("status", "n"))
    sample = list(items.select_related("old_version").order_by("?")[:20])
    at_pebble = sum(bed.pebble.cert_status(item.old_version.serial_hex)["Status"] == "Revoked"
                    for item in sample if item.old_version is not None)
    return {"count": len(certificates), "first_issuance": first, "finished": finished,
            "wall": wall, "to_replaced": to_replaced, "to_revoked": to_revoked,
            "replaced": replaced, "revoked": revoked, "outcomes": outcomes,
            "verified": verify_by_tls(bed, certificates), "cpu": cpu,
            "busy": usage.busy_share, "cpu_by_name": usage.by_name(),
            "sampled": len(sample), "revoked_at_pebble": at_pebble}


def main(argv=None) -> dict:
    args = parse_args(argv)
    configure()
    reset_database()
    from .testbed import Testbed

    print(f"== Incident ({datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC)")
    print(f"   machine: {machine()}")
    print(f"   {args.certificates} certificates on {args.hosts} hosts ({{name}} paths), HTTP-01, "
          f"Pebble ({args.pebble}); workers: threads -c {args.concurrency} on celery,acme + "
          f"-c {args.deploy_concurrency} on deploy; revoke old: {not args.no_revoke}")
    with Testbed(hosts=args.hosts, certificates=args.certificates,
                 pebble=pebble_binary(args.pebble)) as bed:
        certbot = run_certbot(bed, args.certbot) if args.certbot else None
        result = run_incident(bed, args)
    n = result["count"]
    print(f"   first versions (routine scan, untimed here): {result['first_issuance']:.1f} s")
    print(f"   incident: {result['replaced']}/{n} replaced and served, {result['revoked']} old "
          f"versions revoked, {result['verified']} verified by our own TLS handshake; "
          f"{result['revoked_at_pebble']}/{result['sampled']} sampled old serials Revoked at "
          f"Pebble; runs {result['outcomes']}"
          + ("" if result["finished"] else " -- NOT FINISHED within the timeout"))
    if result["to_replaced"]:
        print(f"            start to last verified replacement {result['to_replaced']:.1f} s: "
              f"{result['replaced'] / result['to_replaced']:.2f} certificates/s")
    if result["to_revoked"]:
        print(f"            start to last revocation {result['to_revoked']:.1f} s")
    print("            CPU per certificate: " + ", ".join(
        f"{label} workers {seconds / n:.3f} s" for label, seconds in result["cpu"]) + "; "
        + ", ".join(f"{name} {seconds / n:.3f} s" for name, seconds in result["cpu_by_name"]
                    if name in ("postgres", "sshd", "nginx", "pebble", "redis-server")))
    print(f"            machine busy {result['busy']:.0%} of its {os.cpu_count()} CPUs; CPU "
          "seconds by process: " + ", ".join(
              f"{name} {seconds:.1f}" for name, seconds in result["cpu_by_name"][:10]))
    if certbot:
        print(f"   certbot: {certbot['count'] - certbot['failures']}/{certbot['count']} issued "
              f"one after another, {certbot['per_second']:.2f} certificates/s (median "
              f"{certbot['median_each']:.2f} s per run; issuance only, no revocation)")
        if result["to_replaced"]:
            rate = result["replaced"] / result["to_replaced"]
            print(f"   ratio  : incident / certbot = {rate / certbot['per_second']:.1f}x")
    return {"incident": result, "certbot": certbot}


if __name__ == "__main__":
    main()
