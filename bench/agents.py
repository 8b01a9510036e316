"""Agent check-ins that find nothing to do: many agent hosts checking in at once
against the portal served by gunicorn with the production settings (DEBUG
off, PostgreSQL, Redis as the cache the rate limits count in), over loopback.
Prints check-ins per second and the latency percentiles, for the first
check-in of each host (its state is written) and for the next (nothing new:
nothing written), with who used the CPU.

    .venv/bin/python -m bench.agents --hosts 10000 --clients 32 --workers 2 --threads 16
"""

import argparse
import http.client
import json
import os
import secrets
import signal
import statistics
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from multiprocessing import get_context

from testbed.ports import free_port

from .cpu import Usage
from .env import REDIS_URL, ROOT, configure, machine, reset_database, worker_environment

BODY = {"agent_version": "1.0.0", "mode": "run", "interval": 300, "wait": 0,
        "certificates": {"www.example.test": {"document_root": True}}}


def make_hosts(count: int) -> list[str]:
    """``count`` agent hosts, each with a credential; returns their tokens."""
    from accounts.models import Organization
    from certificates.models import AgentCredential, TargetHost
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
    return tokens


def start_gunicorn(port: int, workers: int, threads: int) -> subprocess.Popen:
    env = {**os.environ, **worker_environment(), "CACHE_URL": REDIS_URL.rsplit("/", 1)[0] + "/11",
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


def _client_process(port: int, tokens: list[str], threads: int) -> tuple[list[float], int]:
    """One load-generating process: ``threads`` keep-alive connections, each
    taking tokens from a shared list; returns the latencies and the failures."""
    latencies: list[float] = []
    failures = [0]
    lock = threading.Lock()
    queue = list(tokens)
    body = json.dumps(BODY).encode()

    def worker() -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        while True:
            with lock:
                if not queue:
                    return
                token = queue.pop()
            started = time.perf_counter()
            try:
                connection.request("POST", "/agent/v1/checkin", body=body, headers={
                    "Authorization": f"Bearer {token}", "Content-Type": "application/json"})
                response = connection.getresponse()
                response.read()
                ok = response.status == 200
            except (OSError, http.client.HTTPException):
                connection.close()
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                ok = False
            elapsed = time.perf_counter() - started
            with lock:
                latencies.append(elapsed)
                failures[0] += 0 if ok else 1

    with ThreadPoolExecutor(threads) as pool:
        for _ in range(threads):
            pool.submit(worker)
    return latencies, failures[0]


def one_round(port: int, tokens: list[str], clients: int, processes: int) -> dict:
    chunks = [tokens[i::processes] for i in range(processes)]
    usage = Usage()
    usage.start()
    started = time.perf_counter()
    with get_context("fork").Pool(processes) as pool:
        results = pool.starmap(_client_process,
                               [(port, chunk, max(clients // processes, 1)) for chunk in chunks])
    elapsed = time.perf_counter() - started
    usage.stop()
    latencies = sorted(x for result in results for x in result[0])
    failures = sum(result[1] for result in results)
    quantiles = statistics.quantiles(latencies, n=100)
    return {"count": len(latencies), "failures": failures, "seconds": elapsed,
            "rate": len(latencies) / elapsed, "p50_ms": quantiles[49] * 1000,
            "p95_ms": quantiles[94] * 1000, "p99_ms": quantiles[98] * 1000,
            "busy": usage.busy_share, "cpu": usage.by_name()[:6]}


def report(name: str, figures: dict) -> None:
    cpu = ", ".join(f"{process} {seconds:.1f} s" for process, seconds in figures["cpu"])
    print(f"{name}: {figures['count']} check-ins in {figures['seconds']:.1f} s = "
          f"{figures['rate']:.0f}/s; latency p50 {figures['p50_ms']:.1f} ms, "
          f"p95 {figures['p95_ms']:.1f} ms, p99 {figures['p99_ms']:.1f} ms; "
          f"failures {figures['failures']}; CPUs busy {figures['busy']:.0%} ({cpu})")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hosts", type=int, default=10000)
    parser.add_argument("--clients", type=int, default=8, help="concurrent connections")
    parser.add_argument("--processes", type=int, default=2, help="load-generating processes")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers")
    parser.add_argument("--threads", type=int, default=16, help="threads per gunicorn worker")
    args = parser.parse_args(argv)
    configure()
    reset_database()
    print(machine())
    tokens = make_hosts(args.hosts)
    port = free_port("127.0.0.1")
    server = start_gunicorn(port, args.workers, args.threads)
    try:
        print(f"{args.hosts} agent hosts; gunicorn gthread, {args.workers} workers x "
              f"{args.threads} threads; {args.clients} client connections in "
              f"{args.processes} processes")
        report("first check-in (state written)", one_round(port, tokens, args.clients,
                                                           args.processes))
        report("next check-in (nothing new)", one_round(port, tokens, args.clients,
                                                        args.processes))
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)


if __name__ == "__main__":
    main()
