"""Renewal throughput: N due certificates on M testbed hosts, renewed by the
portal's real Celery workers through Redis against Pebble, every deployment
proved by TLS; and certbot issuing names one run after another, as a cron job
would, against the same Pebble. Prints the figures.

    .venv/bin/python -m bench.throughput --certificates 200 --hosts 10 --certbot 10
    .venv/bin/python -m bench.throughput --challenge dns-01 --certificates 100 --certbot 10

The DNS-01 variant issues a wildcard and its base name per certificate through
PowerDNS's HTTP API (dns-lexicon), deploys nowhere, and sets certbot's RFC 2136
plugin on BIND beside it (certbot's PowerDNS plugin no longer installs).

With ``--compare BASELINE_DIR``, another checkout's benchmark and this one's
run in turn, and the two are set side by side (bench/compare.py).
"""

import argparse
import datetime
import os
import shutil
import statistics
import subprocess
import time
from pathlib import Path

from .env import ROOT, VAR, configure, machine, reset_database, worker_environment

CERTBOT = ROOT / "var" / "certbot-venv" / "bin" / "certbot"
PEBBLE_BUILD = ROOT / "var" / "pebble-lockfix"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--certificates", "-n", type=int, default=200)
    parser.add_argument("--hosts", "-m", type=int, default=10)
    parser.add_argument("--challenge", choices=["http-01", "dns-01"], default="http-01",
                        help="dns-01: wildcard + base name through PowerDNS, no deployment")
    parser.add_argument("--certbot", type=int, default=10,
                        help="names certbot issues, one run after another (0: skip)")
    # Chosen by measurement (bench/README.md): ACME work waits on the network,
    # so many threads; deployments on their own worker, so that one waiting for
    # a host's lease never holds up an issuance.
    parser.add_argument("--workers", type=int, default=1,
                        help="worker processes for the celery and acme queues")
    parser.add_argument("--pool", default="threads")
    parser.add_argument("--concurrency", type=int, default=32, help="per worker process")
    parser.add_argument("--deploy-workers", type=int, default=1,
                        help="worker processes for the deploy queue alone (0: every worker "
                             "serves every queue)")
    parser.add_argument("--deploy-concurrency", type=int, default=12)
    parser.add_argument("--timeout", type=float, default=900)
    parser.add_argument("--pebble", choices=["patched", "debian"], default="patched",
                        help="patched: Debian's Pebble rebuilt with bench/pebble-patches "
                             "(bench/pebble_build.sh, built on first use), which fix a deadlock "
                             "that hangs Debian's build in about one run in three at this "
                             "concurrency; debian: /usr/bin/pebble as the tests use")
    parser.add_argument("--py-spy", action="store_true",
                        help="sample the workers with py-spy while the clock runs and print "
                             "where their CPU goes")
    parser.add_argument("--compare", type=Path, metavar="BASELINE_DIR",
                        help="another checkout of the portal (e.g. a git worktree): run its "
                             "benchmark and this one's in turn with the options above, and "
                             "print both revisions' medians and their ratio")
    parser.add_argument("--rounds", type=int, default=3,
                        help="with --compare: rounds for each revision, alternating")
    return parser


def parse_args(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    from testbed.bind import HOST_NUMBERS

    if args.challenge == "http-01" and not 1 <= args.hosts <= len(HOST_NUMBERS):
        parser.error(f"--hosts must be 1..{len(HOST_NUMBERS)} (BIND's zone has "
                     f"127.0.0.{HOST_NUMBERS[0]}..{HOST_NUMBERS[-1]})")
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    return args


def pebble_binary(which: str) -> str | None:
    """The patched build (made by bench/pebble_build.sh if missing), or None: Debian's."""
    if which == "debian":
        return None
    subprocess.run([str(ROOT / "bench" / "pebble_build.sh"), str(PEBBLE_BUILD)], check=True)
    return str(PEBBLE_BUILD / "pebble")


def run_certbot(bed, count: int) -> dict:
    """certbot certonly --webroot for the first ``count`` names, one at a time."""
    if not CERTBOT.exists():
        raise SystemExit(f"{CERTBOT} is missing: run bench/certbot_venv.sh (make bench does)")
    base = VAR / "certbot"
    # A lineage left from an earlier run would make certbot skip the name.
    shutil.rmtree(base, ignore_errors=True)
    dirs = ["--config-dir", str(base / "config"), "--work-dir", str(base / "work"),
            "--logs-dir", str(base / "logs")]
    env = {**os.environ, "REQUESTS_CA_BUNDLE": str(bed.pebble.ca_bundle)}
    common = ["--non-interactive", "--agree-tos", "-m", "admin@example.test",
              "--server", bed.pebble.directory_url, *dirs]
    # The account once, untimed, as an installed certbot would already have it.
    subprocess.run([str(CERTBOT), "register", *common], env=env, check=True,
                   capture_output=True, text=True)
    walls, failures = [], 0
    started = time.monotonic()
    for name, host in bed.assignments[:count]:
        t0 = time.monotonic()
        done = subprocess.run(
            [str(CERTBOT), "certonly", *common, "--webroot", "-w", str(host.bed.webroot),
             "-d", name, "--cert-name", name], env=env, capture_output=True, text=True)
        walls.append(time.monotonic() - t0)
        if done.returncode != 0 or "Successfully received certificate" not in done.stdout:
            failures += 1
            print(f"  certbot failed for {name}:\n{done.stderr[-1500:]}")
    wall = time.monotonic() - started
    return {"count": count, "wall": wall, "per_second": count / wall,
            "median_each": statistics.median(walls), "failures": failures}


def run_certbot_dns01(bed, count: int) -> dict:
    """certbot certonly --dns-rfc2136 on BIND for a wildcard and its base name
    each, one run after another, waiting 1 s for propagation (its minimum in
    practice; the default is 60 s)."""
    if not CERTBOT.exists():
        raise SystemExit(f"{CERTBOT} is missing: run bench/certbot_venv.sh (make bench does)")
    base = VAR / "certbot"
    shutil.rmtree(base, ignore_errors=True)
    base.mkdir(parents=True)
    credentials = base / "rfc2136.ini"
    credentials.write_text(
        f"dns_rfc2136_server = {bed.bind.address}\ndns_rfc2136_port = {bed.bind.port}\n"
        f"dns_rfc2136_name = {bed.bind.tsig_key_name}\n"
        f"dns_rfc2136_secret = {bed.bind.tsig_secret}\n"
        f"dns_rfc2136_algorithm = {bed.bind.tsig_algorithm.upper()}\n")
    credentials.chmod(0o600)
    dirs = ["--config-dir", str(base / "config"), "--work-dir", str(base / "work"),
            "--logs-dir", str(base / "logs")]
    env = {**os.environ, "REQUESTS_CA_BUNDLE": str(bed.pebble.ca_bundle)}
    common = ["--non-interactive", "--agree-tos", "-m", "admin@example.test",
              "--server", bed.pebble.directory_url, *dirs]
    subprocess.run([str(CERTBOT), "register", *common], env=env, check=True,
                   capture_output=True, text=True)
    walls, failures = [], 0
    started = time.monotonic()
    for index in range(count):
        name = f"b{index}.example.test"
        t0 = time.monotonic()
        done = subprocess.run(
            [str(CERTBOT), "certonly", *common, "--dns-rfc2136", "--dns-rfc2136-credentials",
             str(credentials), "--dns-rfc2136-propagation-seconds", "1",
             "-d", f"*.{name}", "-d", name, "--cert-name", name],
            env=env, capture_output=True, text=True)
        walls.append(time.monotonic() - t0)
        if done.returncode != 0 or "Successfully received certificate" not in done.stdout:
            failures += 1
            print(f"  certbot failed for {name}:\n{done.stderr[-1500:]}")
    wall = time.monotonic() - started
    return {"count": count, "wall": wall, "per_second": count / wall,
            "median_each": statistics.median(walls), "failures": failures}


def txt_left_at_powerdns(bed) -> int:
    """TXT records left in PowerDNS's zone after the run (each value counted)."""
    import requests

    zone = requests.get(f"{bed.powerdns.api_url}/api/v1/servers/localhost/zones/"
                        f"{bed.powerdns.zone}.", headers={"X-API-Key": bed.powerdns.api_key},
                        timeout=10).json()
    return sum(len(rrset["records"]) for rrset in zone["rrsets"] if rrset["type"] == "TXT")


def run_portal(bed, args) -> dict:
    from django.db.models import Count, F, Max, Min

    from certificates import renewal
    from certificates.models import Deployment, RenewalRun, RenewalStep
    from fujissl_portal.celery import app

    from .cpu import Usage
    from .testbed import dns01_portal_objects, portal_objects
    from .workers import Workers

    dns01 = args.challenge == "dns-01"
    certificates = (dns01_portal_objects(bed, args.certificates) if dns01
                    else portal_objects(bed))
    app.control.purge()
    env = {**worker_environment(), "ACME_CA_BUNDLE": str(bed.pebble.ca_bundle),
           "DEPLOY_TLS_GRACE_SECONDS": "5", "TLS_CHECK_TIMEOUT": "5",
           # Zones and name servers looked up at BIND (which forwards example.net
           # to PowerDNS); both answer on BIND's port, as port 53 in production.
           "DNS_RESOLVERS": f"{bed.bind.address}:{bed.bind.port}",
           "DNS_AUTHORITATIVE_PORT": str(bed.bind.port)}
    if args.deploy_workers:
        groups = [Workers(count=args.workers, pool=args.pool, concurrency=args.concurrency,
                          env=env, queues="celery,acme", label="acme"),
                  Workers(count=args.deploy_workers, pool=args.pool,
                          concurrency=args.deploy_concurrency, env=env, queues="deploy",
                          label="deploy")]
    else:
        groups = [Workers(count=args.workers, pool=args.pool, concurrency=args.concurrency,
                          env=env)]
    workers = _AllWorkers(groups)
    workers.start()
    sampler = None
    usage = Usage()
    try:
        if args.py_spy:
            from .sampling import Sampler

            sampler = Sampler(workers.pids())
        cpu_before = workers.cpu_seconds()
        group_before = [group.cpu_seconds() for group in groups]
        usage.start()
        started = time.monotonic()
        run_ids = renewal.scan(limit=len(certificates))  # what beat's scan does: all due
        deadline = started + args.timeout
        open_runs = RenewalRun.objects.filter(pk__in=run_ids, status__in=RenewalRun.OPEN)
        while open_runs.exists():
            if time.monotonic() > deadline:
                print(f"  timeout: {open_runs.count()} run(s) still open")
                break
            time.sleep(0.2)
        wall = time.monotonic() - started
        usage.stop()
        cpu = workers.cpu_seconds() - cpu_before
        by_group = [(group.label, group.cpu_seconds() - before)
                    for group, before in zip(groups, group_before, strict=True)]
        peaks = workers.peak_rss_mb()
    finally:
        if sampler is not None:
            sampler.stop()
        workers.stop()
    outcomes = {row["status"]: row["n"] for row in RenewalRun.objects.filter(pk__in=run_ids)
                .values("status").annotate(n=Count("pk")).order_by()}
    deployed = Deployment.objects.filter(
        last_version_id=F("certificate__current_version_id"),
        served=True, last_status=Deployment.Status.DEPLOYED,
        certificate__in=certificates).count()
    verified = (txt_left_at_powerdns(bed) if dns01 else verify_by_tls(bed, certificates))
    errors = list(RenewalRun.objects.filter(pk__in=run_ids)
                  .exclude(status=RenewalRun.Status.SUCCEEDED)
                  .values_list("error", flat=True)[:3])
    steps = step_durations(RenewalStep, run_ids)
    # The ACME half alone: from the scan to the last version stored.
    first = RenewalRun.objects.filter(pk__in=run_ids).aggregate(t=Min("created_at"))["t"]
    stored = RenewalStep.objects.filter(run_id__in=run_ids, name="store").aggregate(
        t=Max("at"), n=Count("pk"))
    issued_wall = (stored["t"] - first).total_seconds() if stored["t"] and first else None
    succeeded = outcomes.get(RenewalRun.Status.SUCCEEDED, 0)
    return {"count": len(certificates), "runs": len(run_ids), "succeeded": succeeded,
            "outcomes": outcomes, "deployed": deployed, "verified": verified,
            "wall": wall, "per_second": succeeded / wall, "cpu": cpu, "cpu_by_group": by_group,
            "peaks": peaks, "errors": errors, "steps": steps,
            "issued": stored["n"], "issued_wall": issued_wall,
            "samples": sampler.summary() if sampler is not None else None,
            "busy": usage.busy_share, "cpu_by_name": usage.by_name()}


class _AllWorkers:
    def __init__(self, groups):
        self.groups = groups

    def start(self):
        for group in self.groups:
            group.start()

    def cpu_seconds(self):
        return sum(group.cpu_seconds() for group in self.groups)

    def peak_rss_mb(self):
        return [peak for group in self.groups for peak in group.peak_rss_mb()]

    def pids(self):
        return [process.pid for group in self.groups for process in group.processes]

    def stop(self):
        for group in self.groups:
            group.stop()


def verify_by_tls(bed, certificates) -> int:
    """Our own handshake per name: the leaf served is the current version's."""
    from certificates.models import Certificate

    fingerprints = dict(Certificate.objects.filter(pk__in=[c.pk for c in certificates])
                        .values_list("common_name", "current_version__fingerprint_sha256"))
    good = 0
    for name, host in bed.assignments:
        try:
            good += host.served_leaf_sha256(name) == fingerprints.get(name)
        except OSError:
            pass
    return good


def step_durations(step_model, run_ids) -> dict[str, float]:
    """Median seconds from each step to the one before it in the same run,
    keyed by step name: where a run's wall time goes."""
    gaps: dict[str, list[float]] = {}
    last: dict[int, datetime.datetime] = {}
    started = dict(_run_starts(run_ids))
    for run_id, name, status, at in (step_model.objects.filter(run_id__in=run_ids)
                                     .order_by("run_id", "at", "pk")
                                     .values_list("run_id", "name", "status", "at")):
        before = last.get(run_id) or started.get(run_id) or at
        gaps.setdefault(f"{name}:{status}", []).append((at - before).total_seconds())
        last[run_id] = at
    return {k: statistics.median(v) for k, v in gaps.items()}


def _run_starts(run_ids):
    from certificates.models import RenewalRun

    return RenewalRun.objects.filter(pk__in=run_ids).values_list("pk", "created_at")


def main(argv=None) -> dict:
    args = parse_args(argv)
    if args.compare:
        from .compare import compare

        return compare(args)
    configure()
    reset_database()
    from .testbed import Testbed

    print(f"== Renewal throughput ({datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC)")
    print(f"   machine: {machine()}")
    dns01 = args.challenge == "dns-01"
    what = ("wildcard + base name each, DNS-01 through PowerDNS (lexicon), no deployment"
            if dns01 else f"on {args.hosts} hosts, HTTP-01")
    print(f"   {args.certificates} certificates {what}, Pebble "
          f"({args.pebble}, PEBBLE_VA_NOSLEEP=1); workers: {args.workers} x --pool={args.pool} "
          f"-c {args.concurrency}"
          + (f" on celery,acme + {args.deploy_workers} x -c {args.deploy_concurrency} on deploy"
             if args.deploy_workers else " on every queue")
          + f", Redis {worker_environment()['REDIS_URL']}")
    with Testbed(hosts=0 if dns01 else args.hosts, certificates=0 if dns01
                 else args.certificates, pebble=pebble_binary(args.pebble),
                 powerdns=dns01) as bed:
        run = run_certbot_dns01 if dns01 else run_certbot
        certbot = run(bed, args.certbot) if args.certbot else None
        portal = run_portal(bed, args)
    if dns01:
        print(f"   portal : {portal['succeeded']}/{portal['count']} issued; TXT values left "
              f"at PowerDNS afterwards: {portal['verified']}")
    else:
        print(f"   portal : {portal['succeeded']}/{portal['count']} renewed, "
              f"{portal['deployed']} deployed and served (portal's record), "
              f"{portal['verified']} verified by our own TLS handshake")
    print(f"            wall {portal['wall']:.1f} s, {portal['per_second']:.2f} certificates/s, "
          # To the clock tick: --compare reads the CPU per certificate from it.
          f"workers' CPU {portal['cpu']:.2f} s ({portal['cpu'] / max(portal['count'], 1):.2f} "
          f"s per certificate; "
          + ", ".join(f"{label} {seconds:.1f} s" for label, seconds in portal["cpu_by_group"])
          + "), peak RSS per worker process "
          f"{', '.join(f'{p:.0f}' for p in portal['peaks'])} MB")
    print(f"            machine busy {portal['busy']:.0%} of its {os.cpu_count()} CPUs; CPU "
          "seconds by process: " + ", ".join(
              f"{name} {seconds:.1f}" for name, seconds in portal["cpu_by_name"][:8]))
    if portal["issued_wall"]:
        print(f"            the ACME half alone: {portal['issued']} issued in "
              f"{portal['issued_wall']:.1f} s, "
              f"{portal['issued'] / portal['issued_wall']:.2f} certificates/s")
    if portal["outcomes"].keys() - {"succeeded"}:
        print(f"            outcomes {portal['outcomes']}; first errors: {portal['errors']}")
        print("   NOTE: not every renewal succeeded, so this run's figures do not measure the "
              "portal's throughput (if the errors are CA timeouts: Pebble stopped answering; "
              "see bench/README.md, 'Pebble hangs')")
    if certbot:
        print(f"   certbot: {certbot['count'] - certbot['failures']}/{certbot['count']} issued "
              + ("(--dns-rfc2136 on BIND, propagation 1 s) " if dns01 else "")
              + f"one after another, wall {certbot['wall']:.1f} s, {certbot['per_second']:.2f} "
              f"certificates/s (median {certbot['median_each']:.2f} s per run)")
        ratio = portal["per_second"] / certbot["per_second"]
        print(f"   ratio  : portal / certbot = {ratio:.1f}x")
    print("   median time since the previous step of the same run (s):")
    for name, seconds in sorted(portal["steps"].items(), key=lambda kv: -kv[1]):
        print(f"     {name:24} {seconds:6.2f}")
    if portal["samples"]:
        samples, rows = portal["samples"]
        print(f"   where the workers' CPU went (py-spy, {samples} samples on CPU, all threads):")
        print("     inclusive    self  function")
        for frame, inclusive, own in rows:
            print(f"     {inclusive:8.1%} {own:7.1%}  {frame}")
    return {"portal": portal, "certbot": certbot}


if __name__ == "__main__":
    main()
