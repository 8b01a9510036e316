"""The throughput benchmark of two revisions side by side, in one run:

    .venv/bin/python -m bench.throughput -n 200 -m 10 --certbot 0 --compare ../base --rounds 3

Rounds alternate, the baseline first (ABAB...). Each round is that checkout's
own ``python -m bench.throughput`` in a process of its own, started from the
checkout (working directory and PYTHONPATH) with this venv's Python, so the
migrations, the records the benchmark makes, the scan that enqueues the
renewals, the workers and the counting are all that revision's: no code of
one revision has to agree with the other's models or tasks. The database is
dropped before every round, so each revision migrates a fresh one, and each
round starts a testbed of its own: the same sizes, the same Pebble binary,
the same Redis db and settings for both. The figures are read from the lines
the round prints, which every revision of the benchmark has printed alike.
"""

import datetime
import os
import re
import statistics
import subprocess
import sys
from pathlib import Path

from .env import ROOT, drop_database, machine, worker_environment

FIGURES = re.compile(r"portal : (?P<succeeded>\d+)/(?P<count>\d+) renewed.*?"
                     r"wall (?P<wall>[\d.]+) s, (?P<rate>[\d.]+) certificates/s, "
                     r"workers' CPU (?P<cpu>[\d.]+) s", re.DOTALL)
CERTBOT_RATIO = re.compile(r"portal / certbot = (?P<ratio>[\d.]+)x")
# Built once and used by both sides, so that they meet the same binaries.
SHARED_TOOLS = ("pebble-lockfix", "certbot-venv")


def compare(args) -> dict:
    from .throughput import pebble_binary

    sides = {"baseline": args.compare.resolve(), "new": ROOT}
    for root in sides.values():
        if not (root / "bench" / "throughput.py").exists():
            raise SystemExit(f"{root} is not a checkout of the portal with bench/throughput.py")
    pebble_binary(args.pebble)  # built here if missing, before the baseline looks for it
    _share_tools(sides["baseline"])
    print(f"== Renewal throughput, side by side "
          f"({datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC)")
    print(f"   machine: {machine()}")
    argv = {}
    for side, root in sides.items():
        print(f"   {side:8} {root}: {_revision(root)}")
        argv[side] = _arguments(args, root)
    print(f"   rounds for each revision: {args.rounds}, alternating, the baseline first; each: "
          f"python -m bench.throughput {' '.join(argv['new'])}")
    rounds = {side: [] for side in sides}
    for number in range(1, args.rounds + 1):
        for side, root in sides.items():
            print(f"\n-- round {number}/{args.rounds}: {side}", flush=True)
            drop_database()
            rounds[side].append(_round(root, argv[side]))
    _summary(rounds)
    return rounds


def _env(root: Path) -> dict[str, str]:
    # The workers the round starts inherit this, so they import its code too.
    path = os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH")]))
    # This benchmark's settings as well, so that a baseline whose benchmark
    # predates one of them runs with it (where both set one, the round's own wins).
    return {**os.environ, **worker_environment(), "PYTHONPATH": path, "PYTHONUNBUFFERED": "1"}


def _share_tools(root: Path) -> None:
    for name in SHARED_TOOLS:
        ours, theirs = ROOT / "var" / name, root / "var" / name
        if ours.exists() and not (theirs.exists() or theirs.is_symlink()):
            theirs.parent.mkdir(parents=True, exist_ok=True)
            theirs.symlink_to(ours)


def _revision(root: Path) -> str:
    git = ["git", "-C", str(root)]
    head = subprocess.run([*git, "log", "-1", "--format=%h %s"], capture_output=True,
                          text=True).stdout.strip() or "not a git checkout"
    dirty = subprocess.run([*git, "status", "--porcelain"], capture_output=True,
                           text=True).stdout.strip()
    return head + (" (+ uncommitted changes)" if dirty else "")


def _arguments(args, root: Path) -> list[str]:
    """This run's options as arguments for ``root``'s benchmark. An option that
    benchmark does not know (a baseline older than the option) is left out, and
    said so: its rounds run as that revision always did."""
    from .throughput import build_parser

    usage = subprocess.run([sys.executable, "-m", "bench.throughput", "--help"], cwd=root,
                           env=_env(root), capture_output=True, text=True, check=True).stdout
    known = set(re.findall(r"--[\w-]+", usage))
    argv = []
    for action in build_parser()._actions:
        flag = max(action.option_strings, key=len, default=None)
        if flag in (None, "--help", "--compare", "--rounds"):
            continue
        value = getattr(args, action.dest)
        if flag not in known:
            print(f"   note: {root}'s benchmark has no {flag}: its rounds run without it")
        elif action.nargs == 0:  # a switch
            argv += [flag] if value else []
        else:
            argv += [flag, str(value)]
    return argv


def _round(root: Path, argv: list[str]) -> dict:
    process = subprocess.Popen([sys.executable, "-m", "bench.throughput", *argv], cwd=root,
                               env=_env(root), stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    lines = []
    for line in process.stdout:
        print("   " + line, end="", flush=True)
        lines.append(line)
    if process.wait() != 0:
        raise SystemExit(f"the round in {root} failed (exit status {process.returncode})")
    output = "".join(lines)
    figures = FIGURES.search(output)
    if figures is None:
        raise SystemExit(f"no figures in the output of the round in {root}")
    count = int(figures["count"])
    ratio = CERTBOT_RATIO.search(output)
    return {"rate": float(figures["rate"]), "cpu_per_certificate": float(figures["cpu"]) / count,
            "complete": int(figures["succeeded"]) == count,
            "certbot_ratio": float(ratio["ratio"]) if ratio else None}


def _summary(rounds: dict[str, list[dict]]) -> None:
    print("\n== Side by side (median over each revision's rounds)")
    medians = {}
    for side, results in rounds.items():
        rates = [r["rate"] for r in results]
        cpus = [r["cpu_per_certificate"] for r in results]
        medians[side] = statistics.median(rates), statistics.median(cpus)
        ratios = [r["certbot_ratio"] for r in results if r["certbot_ratio"] is not None]
        print(f"   {side:8} {medians[side][0]:6.2f} certificates/s "
              f"({', '.join(f'{x:.2f}' for x in rates)}), "
              f"{medians[side][1]:.4f} s of worker CPU per certificate "
              f"({', '.join(f'{x:.4f}' for x in cpus)})"
              + (f", {statistics.median(ratios):.1f}x certbot" if ratios else ""))
    (rate_b, cpu_b), (rate_n, cpu_n) = medians["baseline"], medians["new"]
    if rate_b and cpu_b:
        print(f"   new / baseline: certificates/s {rate_n / rate_b:.3f} (above 1: faster), "
              f"CPU per certificate {cpu_n / cpu_b:.3f} (below 1: cheaper)")
    incomplete = [f"{side} round {n}" for side, results in rounds.items()
                  for n, r in enumerate(results, 1) if not r["complete"]]
    if incomplete:
        print(f"   NOTE: not every renewal succeeded in {', '.join(incomplete)}: those rounds "
              "do not measure throughput (see their output above)")
