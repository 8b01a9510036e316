"""`make bench`: the benchmarks one after another, with small defaults.

    .venv/bin/python -m bench [--certificates 50 --hosts 5 --certbot 10 --full]

``--full`` uses the issue's sizes: 200 certificates on 10 hosts and certbot
on 10 names (the incident: 1,000 on 20 hosts); the data-scale benchmark
always runs at its full size.
"""

import argparse
import sys

from . import agents, data_scale, discovery, incident, profile_renewal, throughput


def main() -> None:
    parser = argparse.ArgumentParser(description="Run every benchmark and print figures.")
    parser.add_argument("--certificates", type=int, default=50)
    parser.add_argument("--hosts", type=int, default=5)
    parser.add_argument("--certbot", type=int, default=10)
    parser.add_argument("--full", action="store_true", help="200 certificates on 10 hosts")
    parser.add_argument("--skip", action="append", default=[],
                        choices=["throughput", "incident", "data", "profile", "discovery",
                                 "agents"])
    args = parser.parse_args()
    if args.full:
        args.certificates, args.hosts = 200, 10
    if "throughput" not in args.skip:
        throughput.main(["-n", str(args.certificates), "-m", str(args.hosts),
                         "--certbot", str(args.certbot)])
        print()
    if "incident" not in args.skip:
        size = ["-n", "1000", "-m", "20"] if args.full else [
            "-n", str(args.certificates), "-m", str(args.hosts)]
        incident.main([*size, "--certbot", str(args.certbot)])
        print()
    if "profile" not in args.skip:
        profile_renewal.main(["--top", "20"])
        print()
    if "data" not in args.skip:
        data_scale.main([])
        print()
    if "discovery" not in args.skip:
        discovery.main([])
        print()
    if "agents" not in args.skip:
        agents.main(["--hosts", "10000"])
    sys.stdout.flush()


if __name__ == "__main__":
    main()
