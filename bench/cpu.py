"""Who used the machine's CPU while the clock ran: every process, by name.

Each process's own CPU plus that of its children that have exited and been
waited for (cutime, cstime), so that sshd's per-login children and nginx's
replaced workers count under their parents. Together with the machine's busy
share from /proc/stat this tells whether a benchmark is bound by CPU and by whose.
"""

import os
from collections import Counter
from pathlib import Path

_TICKS = os.sysconf("SC_CLK_TCK")


def _processes() -> dict[int, tuple[str, int]]:
    found = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        comm = text[text.index("(") + 1:text.rindex(")")]
        fields = text.rsplit(")", 1)[1].split()
        # utime, stime, cutime, cstime: fields 14-17 of proc(5), 12-15 after "comm)"
        found[int(stat.parent.name)] = (comm, sum(int(f) for f in fields[11:15]))
    return found


def _machine() -> tuple[int, int]:
    """(busy, total) jiffies of all CPUs since boot."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    return sum(values) - idle, sum(values)


class Usage:
    """``start()`` then ``stop()``; ``by_name()`` and ``busy_share`` afterwards."""

    def start(self) -> None:
        self._before, self._machine_before = _processes(), _machine()

    def stop(self) -> None:
        self._after, self._machine_after = _processes(), _machine()

    @property
    def busy_share(self) -> float:
        """The machine's CPUs busy, as a share of all of them (1.0: every core)."""
        busy = self._machine_after[0] - self._machine_before[0]
        total = self._machine_after[1] - self._machine_before[1]
        return busy / total if total else 0.0

    def by_name(self) -> list[tuple[str, float]]:
        """CPU seconds per process name, largest first."""
        used = Counter()
        for pid, (comm, ticks) in self._after.items():
            before = self._before.get(pid)
            start = before[1] if before and before[0] == comm else 0
            used[comm] += max(ticks - start, 0) / _TICKS
        return [(name, seconds) for name, seconds in used.most_common() if seconds >= 0.05]
