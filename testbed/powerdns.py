"""PowerDNS Authoritative with its HTTP API: a DNS provider's stand-in, driven by
the portal through dns-lexicon's ``powerdns`` provider.

It answers DNS on ``address`` (127.0.1.1) at BIND's port, so that one
``DNS_AUTHORITATIVE_PORT`` reaches both, as port 53 does in production; BIND
forwards the zone ``example.net`` here, which is how Pebble (asking BIND) and
the portal's lookups find it. ``laggard_address`` (127.0.1.2) is the same
server under a second name server's address: for ``lag.test`` it holds a copy
of BIND's zone that never receives an update, so a record written at BIND is
never served there.
"""

import json
import secrets
import shutil
import subprocess
from pathlib import Path

import dns.exception
import dns.message
import dns.query
import dns.rdatatype
import requests

from .ports import free_port
from .tools import Daemon, require

ZONE = "example.net"
LAG_ZONE = "lag.test"
SCHEMA = Path("/usr/share/pdns-backend-sqlite3/schema/schema.sqlite3.sql")


class PowerDNS:
    """``pdns_server`` serving ``example.net`` (and a stale ``lag.test``).

    Attributes: ``address``, ``laggard_address``, ``port`` (DNS), ``api_url``,
    ``api_key``, ``zone``; ``txt(name)`` asks the server directly.
    """

    address = "127.0.1.1"
    laggard_address = "127.0.1.2"
    zone = ZONE
    lag_zone = LAG_ZONE

    def __init__(self, directory: Path, *, port: int):
        binary = require("pdns_server", "pdns-server")
        if not SCHEMA.exists():
            require("pdns-backend-sqlite3-schema", "pdns-backend-sqlite3")
        self.directory, self.port = directory, port
        self.api_port = free_port("127.0.0.1")
        self.api_url = f"http://127.0.0.1:{self.api_port}"
        self.api_key = secrets.token_urlsafe(24)
        database = directory / "pdns.sqlite3"
        sqlite = shutil.which("sqlite3")
        if sqlite:
            subprocess.run([sqlite, str(database)], input=SCHEMA.read_bytes(), check=True)
        else:
            import sqlite3

            with sqlite3.connect(database) as db:
                db.executescript(SCHEMA.read_text())
        (directory / "pdns.conf").write_text("\n".join([
            "launch=gsqlite3", f"gsqlite3-database={database}",
            f"local-address={self.address},{self.laggard_address}", f"local-port={port}",
            "api=yes", f"api-key={self.api_key}", "webserver=yes",
            "webserver-address=127.0.0.1", f"webserver-port={self.api_port}",
            "webserver-allow-from=127.0.0.0/8", f"socket-dir={directory}", "guardian=no",
            "daemon=no", "disable-syslog=yes",
            # Answers straight from the database: a test asks right after a change.
            "cache-ttl=0", "negquery-cache-ttl=0", "query-cache-ttl=0",
            "zone-cache-refresh-interval=0",
            # SQLite lets one writer in at a time and PowerDNS does not wait for the
            # lock ("database is locked", a 500): shorter commits make fewer clashes.
            "gsqlite3-pragma-synchronous=0",
            "",
        ]))
        self.daemon = Daemon("pdns_server", [binary, f"--config-dir={directory}"],
                             directory / "pdns.log")

    def start(self) -> None:
        self.daemon.start()
        self.daemon.wait_until(self._api_answers, f"answering its API at {self.api_url}",
                               not_yet=(OSError, requests.ConnectionError))
        self._create_zone(ZONE, "ns1", [("@", "A", "127.0.0.1"), ("*", "A", "127.0.0.1"),
                                        ("ns1", "A", self.address)])
        self._create_zone(LAG_ZONE, "ns2", [("ns2", "A", self.laggard_address)])
        self.daemon.wait_until(lambda: bool(self.query(ZONE, "SOA").answer),
                               f"serving {ZONE}", not_yet=(OSError, dns.exception.DNSException))

    def stop(self) -> None:
        self.daemon.stop()

    def _api(self, method: str, path: str, body: dict | None = None) -> requests.Response:
        response = requests.request(method, f"{self.api_url}/api/v1/servers/localhost{path}",
                                    headers={"X-API-Key": self.api_key},
                                    data=json.dumps(body) if body else None, timeout=5)
        response.raise_for_status()
        return response

    def _api_answers(self) -> bool:
        return self._api("GET", "").ok

    def _create_zone(self, zone: str, ns: str, records: list[tuple[str, str, str]]) -> None:
        def fqdn(name: str) -> str:
            return f"{zone}." if name == "@" else f"{name}.{zone}."

        self._api("POST", "/zones", {
            "name": f"{zone}.", "kind": "Native", "nameservers": [f"{ns}.{zone}."],
            "soa_edit_api": "",
            "rrsets": [{"name": fqdn(name), "type": rtype, "ttl": 60, "changetype": "REPLACE",
                        "records": [{"content": content, "disabled": False}]}
                       for name, rtype, content in records]})

    def query(self, name: str, rdtype: str) -> dns.message.Message:
        request = dns.message.make_query(name, rdtype)
        return dns.query.tcp(request, self.address, port=self.port, timeout=2)

    def txt(self, name: str) -> list[str]:
        return [b"".join(r.strings).decode() for rrset in self.query(name, "TXT").answer
                if rrset.rdtype == dns.rdatatype.TXT for r in rrset]
