"""Real Celery workers in processes of their own, and what they cost (from /proc)."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from .env import ROOT, VAR

_TICKS = os.sysconf("SC_CLK_TCK")


def _tree(pid: int) -> list[int]:
    """``pid`` and its descendants (a prefork pool's children)."""
    children = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(children.get(current, []))
    return found


def cpu_seconds(pid: int) -> float:
    """User + system CPU of ``pid`` and its live descendants."""
    total = 0
    for p in _tree(pid):
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / _TICKS


def peak_rss_mb(pid: int) -> float:
    """Sum of VmHWM (peak resident set) over ``pid`` and its live descendants."""
    total = 0
    for p in _tree(pid):
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total / 1024


class Workers:
    """``count`` worker processes, each ``--pool=<pool> -c <concurrency>``, on
    every queue; stopped by ``stop()``."""

    def __init__(self, *, count: int, pool: str, concurrency: int, env: dict,
                 queues: str = "", label: str = "bench"):
        self.count, self.pool, self.concurrency, self.env = count, pool, concurrency, env
        self.queues, self.label = queues, label
        self.processes: list[subprocess.Popen] = []
        self.logs: list[Path] = []

    def start(self) -> None:
        from django.conf import settings

        for n in range(self.count):
            log = VAR / f"worker-{self.label}-{n}.log"
            self.logs.append(log)
            with log.open("w") as sink:
                process = subprocess.Popen(
                    [sys.executable, "-m", "celery", "-A", "fujissl_portal", "worker",
                     f"--pool={self.pool}", "-c", str(self.concurrency), "--loglevel=WARNING",
                     "--without-gossip", "--without-mingle", "--without-heartbeat",
                     "-n", f"{self.label}-{os.getpid()}-{n}@%h",
                     "-Q", self.queues or settings.CELERY_WORKER_QUEUES],
                    cwd=ROOT, env={**os.environ, **self.env}, stdout=sink,
                    stderr=subprocess.STDOUT, start_new_session=True)
            self.processes.append(process)
        self._wait_ready()

    def _wait_ready(self) -> None:
        from fujissl_portal.celery import app

        deadline = time.monotonic() + 90
        names = set()
        while len(names) < self.count:
            if time.monotonic() > deadline or any(p.poll() is not None for p in self.processes):
                self.stop()
                tails = "\n".join(log.read_text()[-2000:] for log in self.logs)
                raise RuntimeError(f"Celery workers did not start:\n{tails}")
            replies = app.control.ping(timeout=1.0) or []
            names = {name for reply in replies for name in reply
                     if name.startswith(f"{self.label}-{os.getpid()}-")}
        # Loaded and idle: from here on, their CPU is the benchmark's.

    def cpu_seconds(self) -> float:
        return sum(cpu_seconds(p.pid) for p in self.processes)

    def peak_rss_mb(self) -> list[float]:
        return [peak_rss_mb(p.pid) for p in self.processes]

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
