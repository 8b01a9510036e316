"""BIND 9: the zone ``example.test`` with TSIG-signed RFC 2136 TXT updates.

Pebble resolves every name it validates here, and the portal's DNS-01 path
writes its ``_acme-challenge`` TXT records here, exactly as with a real
primary server. It is also the resolver of the portal's lookups and of Pebble
for ``example.net``, which it forwards to PowerDNS (testbed/powerdns.py) at
127.0.1.1 on the same port: PowerDNS answers DNS there when its fixture runs.

``caa-allow`` and ``caa-deny`` hold CAA records (see zone_text).

Two more names for DNS-01 across servers:
``_acme-challenge.delegated.example.test`` is a CNAME to
``_acme-challenge.delegated.example.net`` (held by PowerDNS), and the zone
``lag.test`` has a second name server (PowerDNS's 127.0.1.2) that never
receives its updates.
"""

import base64
import secrets
from pathlib import Path

import dns.exception
import dns.message
import dns.name
import dns.query
import dns.rdatatype
import dns.tsigkeyring

from .ports import free_port
from .tools import Daemon, require

ZONE = "example.test"
FORWARDED_ZONE = "example.net"  # to PowerDNS
LAG_ZONE = "lag.test"
POWERDNS_ADDRESSES = ("127.0.1.1", "127.0.1.2")
# hN.example.test and *.hN.example.test -> 127.0.0.N, one address per target
# host (see hosts.py for why each host needs its own address).
HOST_NUMBERS = range(2, 131)
# The CA identity the CAA records of caa-allow.example.test allow.
CAA_ALLOWED = "ca.fujissl.test"


def zone_text() -> str:
    """The zone file: apex, ns1 and the wildcard at 127.0.0.1, then the hosts."""
    lines = [
        "$TTL 60",
        f"@ IN SOA ns1.{ZONE}. hostmaster.{ZONE}. ( 1 60 60 3600 60 )",
        f"  IN NS ns1.{ZONE}.",
        "@ IN A 127.0.0.1",
        "ns1 IN A 127.0.0.1",
        "* IN A 127.0.0.1",
        f"_acme-challenge.delegated IN CNAME _acme-challenge.delegated.{FORWARDED_ZONE}.",
        # A CNAME loop, which the portal must refuse rather than follow forever.
        f"_acme-challenge.loop IN CNAME _acme-challenge.loop2.{ZONE}.",
        f"_acme-challenge.loop2 IN CNAME _acme-challenge.loop.{ZONE}.",
        # CAA (RFC 8659): one name lets only the CA known as CAA_ALLOWED issue,
        # one only another CA, and wildcards none. The wildcard A above stops at
        # these names: a name below them does not resolve.
        "caa-allow IN A 127.0.0.1",
        f'caa-allow IN CAA 0 issue "{CAA_ALLOWED}"',
        "caa-deny IN A 127.0.0.1",
        'caa-deny IN CAA 0 issue "other-ca.example; account=1"',
        'caa-deny IN CAA 0 issuewild ";"',
    ]
    for n in HOST_NUMBERS:
        lines += [f"h{n} IN A 127.0.0.{n}", f"*.h{n} IN A 127.0.0.{n}"]
    return "\n".join(lines) + "\n"


def lag_zone_text() -> str:
    return "\n".join([
        "$TTL 60",
        f"@ IN SOA ns1.{ZONE}. hostmaster.{ZONE}. ( 1 60 60 3600 60 )",
        f"  IN NS ns1.{ZONE}.",
        f"  IN NS ns2.{LAG_ZONE}.",
        f"ns2 IN A {POWERDNS_ADDRESSES[1]}",
        "@ IN A 127.0.0.1",
        "* IN A 127.0.0.1",
    ]) + "\n"


class BindServer:
    """``named -g`` serving ``zone`` on ``address:port`` (UDP and TCP).

    Attributes: ``address``, ``port``, ``zone``, ``tsig_key_name``,
    ``tsig_algorithm``, ``tsig_secret`` (base64), ``keyring`` (dnspython).
    The key may add or delete TXT records anywhere in the zone, nothing else.
    """

    address = "127.0.0.1"
    zone = ZONE
    tsig_key_name = "testbed-key"
    tsig_algorithm = "hmac-sha256"

    def __init__(self, directory: Path):
        named = require("named", "bind9")
        self.directory = directory
        # Free at PowerDNS's addresses too: it answers on the same port there.
        self.port = free_port(self.address, udp_too=True, also=POWERDNS_ADDRESSES)
        self.tsig_secret = base64.b64encode(secrets.token_bytes(32)).decode()
        # Updates rewrite the zone file and its journal: this copy is ours alone.
        (directory / f"db.{ZONE}").write_text(zone_text())
        (directory / f"db.{LAG_ZONE}").write_text(lag_zone_text())
        conf = directory / "named.conf"
        conf.write_text(self._config())
        self.daemon = Daemon("named", [named, "-g", "-c", str(conf)], directory / "named.log")

    def _config(self) -> str:
        d = self.directory
        return f"""
key "{self.tsig_key_name}" {{ algorithm {self.tsig_algorithm}; secret "{self.tsig_secret}"; }};
controls {{ }};  # no rndc channel, hence no need for the system's rndc.key
options {{
    directory "{d}";
    pid-file "{d}/named.pid";
    session-keyfile "{d}/session.key";
    listen-on port {self.port} {{ {self.address}; }};
    listen-on-v6 {{ none; }};
    # Recursion for loopback clients only, and only to forward example.net:
    # nothing is asked of the internet's root servers.
    recursion yes;
    allow-recursion {{ 127.0.0.0/8; }};
    dnssec-validation no;
    notify no;
    # A TXT record changes between one question and the next: nothing is cached.
    max-cache-ttl 0;
    max-ncache-ttl 0;
}};
zone "." {{ type hint; file "/dev/null"; }};
zone "{ZONE}" {{
    type primary;
    file "{d}/db.{ZONE}";
    update-policy {{ grant {self.tsig_key_name} zonesub TXT; }};
}};
zone "{LAG_ZONE}" {{
    type primary;
    file "{d}/db.{LAG_ZONE}";
    update-policy {{ grant {self.tsig_key_name} zonesub TXT; }};
}};
zone "{FORWARDED_ZONE}" {{
    type forward;
    forward only;
    forwarders {{ {POWERDNS_ADDRESSES[0]} port {self.port}; }};
}};
"""

    @property
    def keyring(self) -> dict:
        """The TSIG keyring for ``dns.update.Update(..., keyring=...)``."""
        key = (self.tsig_algorithm, self.tsig_secret)
        return dns.tsigkeyring.from_text({self.tsig_key_name: key})

    def start(self) -> None:
        self.daemon.start()
        self.daemon.wait_until(self._serves_zone, f"serving {ZONE} on port {self.port}",
                               not_yet=(OSError, dns.exception.DNSException))

    def stop(self) -> None:
        self.daemon.stop()

    def _serves_zone(self) -> bool:
        return bool(self.query(ZONE, "SOA").answer)

    def query(self, name: str, rdtype: str) -> dns.message.Message:
        """Ask this server (over TCP) for ``name``'s ``rdtype`` records."""
        request = dns.message.make_query(dns.name.from_text(name), rdtype)
        return dns.query.tcp(request, self.address, port=self.port, timeout=2)

    def txt(self, name: str) -> list[str]:
        """The TXT strings at ``name`` (fully qualified), [] when there are none."""
        answer = self.query(name, "TXT")
        return [
            b"".join(rdata.strings).decode()
            for rrset in answer.answer if rrset.rdtype == dns.rdatatype.TXT
            for rdata in rrset
        ]
