"""Discovery throughput: endpoints checked per second on loopback.

One testbed host (sshd + nginx, as in the tests) serves ``--names`` TLS virtual
hosts on one address and port, each its own self-signed certificate. A
discovery scan of that address with every name given as an SNI name is one
probe of the address, then one TLS handshake per name; each certificate found
is stored as a finding. Prints the endpoints checked per second (probes over
the scan's whole time, storing included) and the handshakes alone, median of
``--repeat`` scans, with the settings they ran under.

    .venv/bin/python -m bench.discovery --names 300 --repeat 5
"""

import argparse
import datetime
import statistics
import time

from .env import VAR, configure, machine, reset_database
from .testbed import Folders


def _scan_once(organization, address: str, port: int, names: list[str]) -> dict:
    from certificates.inventory import discovery
    from certificates.models import InventoryCertificate

    InventoryCertificate.objects.all().delete()  # each scan finds everything anew
    started = time.perf_counter()
    found = discovery.scan(organization, targets_text=address, ports_text=str(port),
                           names=names)
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "probes": found.probes, "served": found.served,
            "rows": len(found.rows), "rate": found.probes / seconds}


def _handshakes_only(address: str, port: int, names: list[str]) -> float:
    """Probes per second of the TLS handshakes alone (no database)."""
    from certificates.inventory import discovery

    probes = [discovery.Probe(address, port, name) for name in names]
    started = time.perf_counter()
    discovery._probe_all(probes, None)  # noqa: SLF001 - the network part alone
    return len(probes) / (time.perf_counter() - started)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--names", type=int, default=300, help="TLS virtual hosts")
    parser.add_argument("--repeat", type=int, default=5, help="scans to take the median of")
    parser.add_argument("--concurrency", type=int, default=0,
                        help="DISCOVERY_CONCURRENCY for the scan (0: the setting's default)")
    return parser.parse_args(argv)


def main(argv=None) -> dict:
    args = parse_args(argv)
    configure()
    from django.conf import settings

    from accounts.models import Organization
    from testbed.hosts import TargetHost
    from testbed.ports import free_port

    reset_database()
    organization = Organization.objects.create(name="Discovery", slug="discovery")
    names = [f"v{i}.h9.example.test" for i in range(args.names)]
    bed = TargetHost(Folders(VAR / "discovery").mktemp("h9-"), 9, free_port("127.0.0.9"))
    bed.serve_sites(names)
    bed.start()
    try:
        settings.DISCOVERY_PORTS = [bed.tls_port]
        settings.DISCOVERY_MAX_NAMES = args.names + 10
        if args.concurrency:
            settings.DISCOVERY_CONCURRENCY = args.concurrency
        _scan_once(organization, bed.address, bed.tls_port, names)  # warm-up
        scans = [_scan_once(organization, bed.address, bed.tls_port, names)
                 for _ in range(args.repeat)]
        handshakes = [_handshakes_only(bed.address, bed.tls_port, names)
                      for _ in range(args.repeat)]
    finally:
        bed.stop()
    rate = statistics.median(s["rate"] for s in scans)
    print(f"== Discovery on loopback ({datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC, "
          "PostgreSQL)")
    print(f"   machine: {machine()}")
    print(f"   {args.names} nginx virtual hosts on {bed.address}:{bed.tls_port}; "
          f"DISCOVERY_CONCURRENCY={settings.DISCOVERY_CONCURRENCY}, "
          f"DISCOVERY_TIMEOUT={settings.DISCOVERY_TIMEOUT} s; median of {args.repeat} scans")
    last = scans[-1]
    print(f"   scan: {last['probes']} probes, {last['served']} served a certificate, "
          f"{last['rows']} certificates stored")
    print(f"   endpoints checked per second, scan with storing: {rate:8.0f}   "
          f"(median scan {statistics.median(s['seconds'] for s in scans):.2f} s)")
    print(f"   endpoints checked per second, handshakes alone: "
          f"{statistics.median(handshakes):8.0f}")
    return {"rate": rate, "handshakes": statistics.median(handshakes), "scans": scans}


if __name__ == "__main__":
    main()
