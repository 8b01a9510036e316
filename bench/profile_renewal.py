"""Where the time goes: one renewal (issuance over ACME against Pebble, HTTP-01
through a host's webroot over SSH, deployment with reload and TLS check),
profiled with cProfile in this process. Prints the top entries and the time
between the run's recorded steps.

    .venv/bin/python -m bench.profile_renewal [--renewals 3]
"""

import argparse
import cProfile
import datetime
import io
import pstats
import time

from .env import VAR, configure, machine, reset_database


class _InlineExecutor:
    """Deployment's thread pool, run in this thread so that cProfile sees it
    (bench only: the product code is unchanged)."""

    def __init__(self, *args, **kwargs):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        return False

    def map(self, fn, *iterables):
        return list(map(fn, *iterables))


class _Counts:
    """Round trips of one renewal, counted at the seams in this process (bench
    only): SFTP requests, remote commands and logins; SQL comes from Django."""

    def __init__(self):
        import paramiko

        from certificates.seams import ssh

        self.sftp = self.commands = self.logins = 0
        originals = (paramiko.SFTPClient._request, ssh.Session.run, ssh._log_in)

        def request(client, *args, **kwargs):
            self.sftp += 1
            return originals[0](client, *args, **kwargs)

        def run(session, *args, **kwargs):
            self.commands += 1
            return originals[1](session, *args, **kwargs)

        def log_in(*args, **kwargs):
            self.logins += 1
            return originals[2](*args, **kwargs)

        paramiko.SFTPClient._request, ssh.Session.run, ssh._log_in = request, run, log_in

    def reset(self):
        self.sftp = self.commands = self.logins = 0


def _stats_text(profile, sort: str, limit: int) -> str:
    out = io.StringIO()
    stats = pstats.Stats(profile, stream=out).strip_dirs().sort_stats(sort)
    stats.print_stats(limit)
    text = out.getvalue()
    # Keep the table only: from the column header on.
    return text[text.find("   ncalls"):].rstrip()


def sleeping_seconds(profile) -> float:
    stats = pstats.Stats(profile)
    return sum(tt for (file, _line, name), (_cc, _nc, tt, _ct, _callers)
               in stats.stats.items() if name == "<built-in method time.sleep>")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--renewals", type=int, default=3,
                        help="renewals profiled one after another (the first is a warm-up)")
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--cpu", action="store_true",
                        help="profile CPU time (time.process_time) instead of wall time")
    parser.add_argument("--queries", action="store_true",
                        help="print the SQL of the last renewal, statement by statement")
    args = parser.parse_args(argv)
    configure()
    reset_database()
    from django.conf import settings
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from certificates import renewal
    from certificates.hosts import deployment
    from certificates.models import Certificate, RenewalRun, RenewalStep

    from .testbed import Testbed, portal_objects
    from .throughput import step_durations

    print(f"== Where the time goes: one renewal "
          f"({datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC)")
    print(f"   machine: {machine()}")
    settings.DEPLOY_TLS_GRACE_SECONDS = 5
    deployment.ThreadPoolExecutor = _InlineExecutor
    counts, counted = _Counts(), []
    with Testbed(hosts=1, certificates=1) as bed:
        (certificate,) = portal_objects(bed)
        walls, runs, cpus = [], [], []
        profile = cProfile.Profile(time.process_time) if args.cpu else cProfile.Profile()
        for n in range(args.renewals):
            Certificate.objects.filter(pk=certificate.pk).update(
                renew_after=None, next_attempt_at=None)
            counts.reset()
            cpu0 = time.process_time()
            t0 = time.perf_counter()
            with CaptureQueriesContext(connection) as queries:
                if n == 0:
                    run = renewal.run_inline(certificate_id=certificate.pk)
                else:
                    profile.enable()
                    run = renewal.run_inline(certificate_id=certificate.pk)
                    profile.disable()
            walls.append(time.perf_counter() - t0)
            cpus.append(time.process_time() - cpu0)
            counted.append((len(queries), counts.sftp, counts.commands, counts.logins))
            last_queries = [q["sql"] for q in queries.captured_queries]
            runs.append(run)
            if run.status != RenewalRun.Status.SUCCEEDED:
                raise SystemExit(f"renewal {n} did not succeed: {run.status} {run.error}")
    profiled = walls[1:] or walls
    path = VAR / "renewal.prof"
    profile.dump_stats(path)
    total = sum(profiled)
    slept = sleeping_seconds(profile) if len(walls) > 1 else 0.0
    print(f"   {len(walls)} renewals, each issued, deployed and verified: wall "
          f"{', '.join(f'{w:.2f}' for w in walls)} s (first one unprofiled, a warm-up)")
    print(f"   this process's CPU per renewal: {', '.join(f'{c:.3f}' for c in cpus)} s "
          "(profiled ones include cProfile's own overhead)")
    print(f"   profiled: {total:.2f} s wall, of which {slept:.2f} s ({slept / total:.0%}) in "
          f"time.sleep (the acme library's polling and the TLS check's retry)")
    print(f"   full profile: {path} (python -m pstats, or snakeviz)")
    print("   round trips per renewal (SQL queries, SFTP requests, remote commands, SSH "
          "logins): " + "; ".join(f"{q}, {f}, {c}, {lg}" for q, f, c, lg in counted)
          + " (logins are kept from one renewal to the next)")
    print("   median time since the previous step of the same run (s):")
    gaps = step_durations(RenewalStep, [r.pk for r in runs[1:] or runs])
    for name, seconds in sorted(gaps.items(), key=lambda kv: -kv[1]):
        print(f"     {name:24} {seconds:6.2f}")
    if args.queries:
        print("-- the SQL of the last renewal --")
        for number, sql in enumerate(last_queries, 1):
            print(f"{number:4} {sql[:220]}")
    print(f"-- top {args.top} by cumulative time --")
    print(_stats_text(profile, "cumulative", args.top))
    print(f"-- top {args.top} by own time --")
    print(_stats_text(profile, "tottime", args.top))


if __name__ == "__main__":
    main()
