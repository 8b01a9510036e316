"""Where the workers' CPU goes under load: py-spy samples each worker process
(every thread, on-CPU only) while the clock runs, and the stacks are summed
per function. Optional (``--py-spy``); py-spy is in requirements-bench.txt.

cProfile sees one thread of one process; a renewal under load is spread over
dozens of threads in two processes, so sampling is the honest view of it.
"""

import shutil
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

from .env import VAR


class Sampler:
    """``py-spy record`` attached to each pid, until ``stop()``."""

    def __init__(self, pids: list[int], *, rate: int = 200):
        binary = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
        if not Path(binary).exists():
            raise SystemExit("py-spy is missing: pip install -r requirements-bench.txt")
        for old in VAR.glob("py-spy-*.txt"):  # an earlier run's
            old.unlink()
        self.outputs = [VAR / f"py-spy-{pid}.txt" for pid in pids]
        self.processes = [
            subprocess.Popen([binary, "record", "--pid", str(pid), "--rate", str(rate),
                              "--format", "raw", "--output", str(output), "--nonblocking"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            for pid, output in zip(pids, self.outputs, strict=True)]

    def stop(self) -> None:
        for process in self.processes:
            process.send_signal(signal.SIGINT)  # py-spy writes its file on SIGINT
        for process in self.processes:
            process.wait(timeout=60)

    def summary(self, top: int = 25) -> tuple[int, list[tuple[str, float, float]]]:
        """(samples, [(function, inclusive share, self share)]), by inclusive share."""
        inclusive, own, total = Counter(), Counter(), 0
        for output in self.outputs:
            if not output.exists():
                continue
            for line in output.read_text().splitlines():
                stack, _, count = line.rpartition(" ")
                if not stack:
                    continue
                count = int(count)
                total += count
                frames = [_short(frame) for frame in stack.split(";")]
                for frame in set(frames):
                    inclusive[frame] += count
                own[frames[-1]] += count
        # Frames under nearly every sample (thread bootstrap, the worker's loop)
        # say nothing about where the time goes.
        rows = [(frame, n / total, own[frame] / total)
                for frame, n in inclusive.most_common() if n < 0.9 * total][:top]
        return total, rows


def _short(frame: str) -> str:
    """``function (path/to/module.py:line)`` → ``module.py:function``."""
    name, _, where = frame.partition(" (")
    path = where.rstrip(")").rsplit(":", 1)[0]
    return f"{Path(path).name}:{name}"
