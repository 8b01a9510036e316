"""Agent check-ins that find nothing to do: many agent hosts checking in at once
against the portal served by gunicorn with the production settings (DEBUG
off, PostgreSQL, Redis as the cache the rate limits count in), over loopback,
loaded by wrk (bench/agents_checkin.lua; each request as the next of the
hosts). Prints check-ins per second, the latency percentiles and who used the
CPU, for two cases:

- "seen again": a cron agent's check-in, its time written (one UPDATE);
- "polling": a check-in within seconds of the last (serve mode): nothing written.

    .venv/bin/python -m bench.agents --hosts 10000 --connections 8 --seconds 20

wrk is closed-loop: with the cores busy, latency grows with --connections
(bench/README.md, 7, gives 4 and 8). BENCH_DATABASE_URL names the database, so
that two revisions can be measured one after the other, each on its own.
"""

import argparse
import http.client
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from datetime import timedelta

from testbed.ports import free_port

from .cpu import Usage
from .env import REDIS_URL, ROOT, VAR, configure, machine, reset_database, worker_environment
from .workers import cpu_seconds

SCRIPT = ROOT / "bench" / "agents_checkin.lua"


def make_hosts(count: int) -> list[str]:
    """``count`` agent hosts, each with a credential and a state row; their tokens."""
    from django.utils import timezone

    from accounts.models import Organization
    from certificates.models import AgentCredential, AgentState, TargetHost
    from certificates.models.agents import CREDENTIAL_MARK, digest

    organization = Organization.objects.create(name="Agents", slug="agents")
    hosts = TargetHost.objects.bulk_create(
        [TargetHost(organization=organization, name=f"agent{i:05d}",
                    transport=TargetHost.Transport.AGENT) for i in range(count)],
        batch_size=2000)
    tokens, rows = [], []
    for host in hosts:
        prefix, secret = secrets.token_hex(6), secrets.token_urlsafe(32)
        rows.append(AgentCredential(host=host, prefix=prefix, secret_hash=digest(secret)))
        tokens.append(f"{CREDENTIAL_MARK}_{prefix}_{secret}")
    AgentCredential.objects.bulk_create(rows, batch_size=2000)
    AgentState.objects.bulk_create(
        [AgentState(host=host, last_seen=timezone.now(), version="1.0.0", mode="run",
                    interval=300, certificates={"www.example.test": {
                        "document_root": True, "key_on_host": False,
                        "installed_fingerprint": ""}}) for host in hosts], batch_size=2000)
    return tokens


def seen_long_ago() -> None:
    """Every host last seen an interval ago: its next check-in writes its time."""
    from django.utils import timezone

    from certificates.models import AgentState

    AgentState.objects.update(last_seen=timezone.now() - timedelta(minutes=5))


def start_gunicorn(port: int, workers: int, threads: int) -> subprocess.Popen:
    env = {**os.environ, **worker_environment(),
           "CACHE_URL": REDIS_URL.rsplit("/", 1)[0] + "/11",
           # The rate limit counts per host; wrk comes back to each host within
           # seconds, which no agent does.
           "AGENT_THROTTLE_RATE": "100000/min"}
    process = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "fujissl_portal.wsgi", "-k", "gthread",
         "-w", str(workers), "--threads", str(threads), "-b", f"127.0.0.1:{port}",
         "--log-level", "warning", "--keep-alive", "30"],
        cwd=ROOT, env=env, start_new_session=True)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            connection.request("GET", "/agent/v1/checkin")  # any answer: it is up
            connection.getresponse().read()
            return process
        except OSError:
            time.sleep(0.2)
    process.kill()
    raise SystemExit("gunicorn did not start")


def load(port: int, tokens_file, *, connections: int, threads: int, seconds: int,
         server_pid: int) -> dict:
    usage = Usage()
    usage.start()
    server_before = cpu_seconds(server_pid)
    done = subprocess.run(
        ["wrk", "-t", str(threads), "-c", str(connections), "-d", f"{seconds}s",
         "--latency", "-s", str(SCRIPT), f"http://127.0.0.1:{port}", "--",
         str(tokens_file), str(threads)], capture_output=True, text=True, check=True)
    server_cpu = cpu_seconds(server_pid) - server_before
    usage.stop()
    line = next(x for x in done.stdout.splitlines() if x.startswith("FIGURES"))
    count, errors, micros, p50, p95, p99 = (float(x) for x in line.split()[1:])
    return {"count": int(count), "errors": int(errors), "rate": count / (micros / 1e6),
            "p50_ms": p50 / 1000, "p95_ms": p95 / 1000, "p99_ms": p99 / 1000,
            "server_ms": server_cpu / max(count, 1) * 1000, "busy": usage.busy_share,
            "cpu": usage.by_name()[:6]}


def report(name: str, figures: dict) -> None:
    cpu = ", ".join(f"{process} {seconds:.1f} s" for process, seconds in figures["cpu"])
    print(f"{name}: {figures['count']} check-ins, {figures['rate']:.0f}/s; latency p50 "
          f"{figures['p50_ms']:.1f} ms, p95 {figures['p95_ms']:.1f} ms, p99 "
          f"{figures['p99_ms']:.1f} ms; errors {figures['errors']}; gunicorn CPU "
          f"{figures['server_ms']:.2f} ms per check-in; CPUs busy {figures['busy']:.0%} "
          f"({cpu})")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hosts", type=int, default=10000)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--seconds", type=int, default=20, help="per case")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers")
    parser.add_argument("--threads", type=int, default=4, help="threads per gunicorn worker")
    args = parser.parse_args(argv)
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is missing: run scripts/install-system-packages.sh (as root)")
    configure()
    reset_database()
    print(machine())
    tokens = make_hosts(args.hosts)
    tokens_file = VAR / "agent-tokens.txt"
    tokens_file.write_text("\n".join(tokens) + "\n")
    tokens_file.chmod(0o600)
    port = free_port("127.0.0.1")
    server = start_gunicorn(port, args.workers, args.threads)
    try:
        print(f"{args.hosts} agent hosts; gunicorn gthread, {args.workers} workers x "
              f"{args.threads} threads; wrk, {args.connections} connections, "
              f"{args.seconds} s per case")
        options = {"connections": args.connections, "threads": 2, "seconds": args.seconds,
                   "server_pid": server.pid}
        seen_long_ago()
        report("seen again (time written)", load(port, tokens_file, **options))
        report("polling (nothing written)", load(port, tokens_file, **options))
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
        tokens_file.unlink(missing_ok=True)


if __name__ == "__main__":
    main()
