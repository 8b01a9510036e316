"""Pebble, Let's Encrypt's ACME test CA, resolving names through BIND.

Pebble forgets every account, order and even its issuing root when it stops:
after ``stop()``/``start()`` a client must register again.
"""

import json
import os
from pathlib import Path

import pytest
import requests

from . import certs
from .ports import free_port
from .tools import Daemon, require

_HOST = "127.0.0.1"


class Pebble:
    """One Pebble: ``directory_url``, ``ca_bundle``, ``http_port``, ``management_url``.

    ``ca_bundle`` verifies Pebble's own HTTPS listeners (not the certificates
    it issues: those chain to ``root_pem()``).
    """

    def __init__(self, directory: Path, *, listener_cert: Path, listener_key: Path,
                 ca_bundle: Path, http_port: int, dns_server: str,
                 eab_keys: dict | None, nonce_reject: int | None, binary: str | None = None,
                 validity_seconds: int | None = None):
        binary = binary or require("pebble", "pebble")
        self.ca_bundle, self.http_port = str(ca_bundle), http_port
        listen, management, self.tls_port = (free_port(_HOST) for _ in range(3))
        self.directory_url = f"https://{_HOST}:{listen}/dir"
        self.management_url = f"https://{_HOST}:{management}"
        config = {
            "listenAddress": f"{_HOST}:{listen}",
            "managementListenAddress": f"{_HOST}:{management}",
            "certificate": str(listener_cert),
            "privateKey": str(listener_key),
            "httpPort": http_port,  # where the HTTP-01 validator connects
            "tlsPort": self.tls_port,
            "ocspResponderURL": "",
            "externalAccountBindingRequired": eab_keys is not None,
            "externalAccountMACKeys": eab_keys or {},
        }
        if validity_seconds is not None:  # Pebble's default: five years
            config["certificateValidityPeriod"] = validity_seconds
        config_path = directory / "pebble.json"
        config_path.write_text(json.dumps({"pebble": config}, indent=2))
        env = dict(os.environ, PEBBLE_VA_NOSLEEP="1")  # no 0-15 s wait per validation
        env.pop("PEBBLE_WFE_NONCEREJECT", None)
        if nonce_reject is not None:  # None keeps Pebble's default: 5 % badNonce
            env["PEBBLE_WFE_NONCEREJECT"] = str(nonce_reject)
        argv = [binary, "-config", str(config_path), "-dnsserver", dns_server]
        self.daemon = Daemon(f"pebble :{listen}", argv, directory / "pebble.log", env)

    def start(self) -> None:
        """Start (or restart, on the same ports) and wait until both APIs answer."""
        self.daemon.start()
        self.daemon.wait_until(self._ready, f"answering at {self.directory_url}")

    def stop(self) -> None:
        self.daemon.stop()

    def _ready(self) -> bool:
        directory = requests.get(self.directory_url, verify=self.ca_bundle, timeout=2)
        return directory.ok and bool(self.root_pem())

    def _management(self, path: str) -> str:
        response = requests.get(self.management_url + path, verify=self.ca_bundle, timeout=5)
        response.raise_for_status()
        return response.text

    def root_pem(self) -> str:
        """The current issuing root (changes at every start)."""
        return self._management("/roots/0")

    def intermediate_pem(self) -> str:
        """The current intermediate that signs the leaves."""
        return self._management("/intermediates/0")

    def cert_status(self, serial_hex: str) -> dict:
        """What Pebble says of the certificate with this serial (hex): its
        ``Status`` ("Valid" or "Revoked") and, once revoked, its ``Reason``."""
        return json.loads(self._management(f"/cert-status-by-serial/{serial_hex.lower()}"))


class PebbleFactory:
    """``factory(*, eab_keys=None, nonce_reject=0, validity_seconds=None) -> Pebble``
    (started).

    All Pebbles share one listener certificate and one ``http_port``: an
    HTTP-01 validation always connects to that port, and the target hosts'
    nginx listen there (each on its own address).
    """

    def __init__(self, tmp_path_factory: pytest.TempPathFactory, *,
                 http_port: int, dns_server: str, binary: str | None = None):
        """``binary``: another Pebble than Debian's (the benchmark's patched build)."""
        self._tmp, self.http_port, self.dns_server = tmp_path_factory, http_port, dns_server
        self.binary = binary
        self.instances: list[Pebble] = []
        directory = tmp_path_factory.mktemp("testbed-pebble-listener")
        ca_key, ca_cert = certs.make_ca("testbed Pebble listener CA")
        key, cert = certs.make_leaf(ca_key, ca_cert, ["localhost"], [_HOST])
        self.ca_bundle = directory / "ca.pem"
        self.ca_bundle.write_text(certs.cert_pem(ca_cert))
        self.listener_cert = directory / "listener.pem"
        self.listener_cert.write_text(certs.cert_pem(cert))
        self.listener_key = directory / "listener.key"
        certs.write_private(self.listener_key, certs.key_pem(key))

    def __call__(self, *, eab_keys: dict | None = None, nonce_reject: int | None = 0,
                 validity_seconds: int | None = None) -> Pebble:
        """``validity_seconds``: the lifetime of the certificates it issues."""
        pebble = Pebble(
            self._tmp.mktemp("testbed-pebble"), listener_cert=self.listener_cert,
            listener_key=self.listener_key, ca_bundle=self.ca_bundle, http_port=self.http_port,
            dns_server=self.dns_server, eab_keys=eab_keys, nonce_reject=nonce_reject,
            binary=self.binary, validity_seconds=validity_seconds,
        )
        self.instances.append(pebble)  # before start: a failed start is still cleaned up
        pebble.start()
        return pebble

    def stop_all(self) -> None:
        for pebble in self.instances:
            pebble.stop()
