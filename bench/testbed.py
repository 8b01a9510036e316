"""The testbed's real peers outside pytest: BIND, one Pebble, and target hosts
(sshd + nginx), built from the same classes as testbed/fixtures.py.

Each host's nginx gets one TLS server block per certificate name, with files
of its own under ``ssl/<name>/``, so that every certificate the benchmark
deploys can be proved served by a handshake with its own SNI name.
"""

import itertools
import shutil
from pathlib import Path

from testbed.bind import ZONE, BindServer
from testbed.hosts import TargetHost
from testbed.pebble import PebbleFactory
from testbed.ports import free_port
from testbed.powerdns import PowerDNS

from .env import VAR


class Folders:
    """The ``mktemp(name)`` that testbed's factories expect, under var/bench/testbed."""

    def __init__(self, root: Path):
        self.root = root
        shutil.rmtree(root, ignore_errors=True)
        root.mkdir(parents=True)
        self._count = itertools.count()

    def mktemp(self, name: str) -> Path:
        path = self.root / f"{name}{next(self._count)}"
        path.mkdir()
        return path


def cert_name(index: int, host_number: int) -> str:
    """``c<index>.h<N>.example.test``: BIND answers it with the host's 127.0.0.N."""
    return f"c{index}.h{host_number}.{ZONE}"


class BenchHost:
    """A testbed TargetHost whose nginx serves ``names``, each with its own files."""

    def __init__(self, folders: Folders, number: int, http_port: int, names: list[str]):
        self.bed = TargetHost(folders.mktemp(f"testbed-h{number}-"), number, http_port)
        self.names = names
        # Made once, as on a host that has been through one renewal: concurrent
        # runs for names on one host race to create it (see bench/README.md).
        (self.bed.webroot / ".well-known" / "acme-challenge").mkdir(parents=True)
        self.bed.serve_sites(names)

    def start(self) -> None:
        self.bed.start()

    def stop(self) -> None:
        self.bed.stop()

    def path_pattern(self, file: str) -> str:
        return self.bed.site_path(file)

    def served_leaf_sha256(self, name: str) -> str:
        return self.bed.served_leaf_sha256(name)


class Testbed:
    """BIND + Pebble (VA without sleep, no nonce rejection) + ``hosts`` hosts
    carrying ``certificates`` names between them, round robin."""

    def __init__(self, *, hosts: int, certificates: int, root: Path | None = None,
                 pebble: str | None = None, powerdns: bool = False):
        """``pebble``: the Pebble binary (default: Debian's); ``powerdns``: also
        PowerDNS with ``example.net``, which BIND forwards to it (DNS-01)."""
        self.folders = Folders(root or VAR / "testbed")
        self._pebble_binary = pebble
        self.http_port = free_port("127.0.0.1")
        self.bind = BindServer(self.folders.mktemp("testbed-bind"))
        self.powerdns = (PowerDNS(self.folders.mktemp("testbed-powerdns"), port=self.bind.port)
                         if powerdns else None)
        self.pebble = None
        self.hosts: list[BenchHost] = []
        self._host_count, self._cert_count = hosts, certificates
        # (name, host) for every certificate, in index order.
        self.assignments: list[tuple[str, BenchHost]] = []

    def __enter__(self):
        try:
            self.bind.start()
            if self.powerdns is not None:
                self.powerdns.start()
            factory = PebbleFactory(self.folders, http_port=self.http_port,
                                    dns_server=f"{self.bind.address}:{self.bind.port}",
                                    binary=self._pebble_binary)
            self.pebble = factory(nonce_reject=0)
            numbers = list(range(2, 2 + self._host_count))
            names = {n: [] for n in numbers}
            order = []
            for i in range(self._cert_count):
                number = numbers[i % len(numbers)]
                names[number].append(cert_name(i, number))
                order.append((cert_name(i, number), number))
            by_number = {}
            for number in numbers:
                host = BenchHost(self.folders, number, self.http_port, names[number])
                self.hosts.append(host)  # before start: a failed start is still stopped
                host.start()
                by_number[number] = host
            self.assignments = [(name, by_number[number]) for name, number in order]
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc_info):
        self.stop()

    def stop(self) -> None:
        for host in self.hosts:
            host.stop()
        if self.pebble is not None:
            self.pebble.stop()
        if self.powerdns is not None:
            self.powerdns.stop()
        self.bind.stop()


def dns01_names(index: int) -> list[str]:
    """A wildcard and its base name in PowerDNS's zone: both TXT values at one name."""
    return [f"*.c{index}.example.net", f"c{index}.example.net"]


def _organization_and_ca(bed: Testbed, slug: str):
    from django.conf import settings

    from accounts.models import Organization
    from certificates.models import CAAccount
    from certificates.renewal import issuance

    organization = Organization.objects.create(name="Bench", slug=slug)
    ca = CAAccount.objects.create(
        organization=organization, name="Pebble", directory_url=bed.pebble.directory_url,
        contact_email="ops@example.test", price=0, currency="JPY", low_balance_threshold=0)
    settings.ACME_CA_BUNDLE = str(bed.pebble.ca_bundle)
    client = issuance.connect_ca(ca)
    client.ensure_account()
    issuance.remember_account(ca, client)
    return organization, ca


def dns01_portal_objects(bed: Testbed, count: int, *, organization_slug="bench"):
    """An organisation, a CA account registered at the bed's Pebble, a DNS
    credential for the bed's PowerDNS (through lexicon) and ``count`` DNS-01
    certificates for a wildcard and its base name each, deployed nowhere: the
    figures are issuance's alone."""
    from certificates.models import Certificate, Challenge, DNSCredential

    organization, ca = _organization_and_ca(bed, organization_slug)
    credential = DNSCredential(organization=organization, name="PowerDNS", kind="lexicon",
                               zones=[bed.powerdns.zone], provider="powerdns",
                               options={"pdns_server": bed.powerdns.api_url})
    credential.secret_values = {"auth_token": bed.powerdns.api_key}
    credential.save()
    certificates = []
    for index in range(count):
        names = dns01_names(index)
        cert = Certificate.objects.create(organization=organization, ca_account=ca,
                                          common_name=names[0], sans=names,
                                          challenge=Challenge.DNS_01)
        cert.dns_credentials.add(credential)
        certificates.append(cert)
    return certificates


def portal_objects(bed: Testbed, *, organization_slug="bench"):
    """The portal's records for ``bed``: an organisation, a CA account at the
    bed's Pebble (registered now, so no run pays for it), one portal host per
    testbed host with per-certificate paths, and one HTTP-01 certificate per
    name, each deployed to its host. Returns the certificates, in index order."""
    from django.utils import timezone

    from certificates.models import Certificate, Challenge, Deployment, TargetHost

    organization, ca = _organization_and_ca(bed, organization_slug)
    portal_hosts = {}
    for host in bed.hosts:
        b = host.bed
        portal_hosts[id(host)] = TargetHost.objects.create(
            organization=organization, name=b.name, address=b.address, ssh_port=b.ssh_port,
            ssh_user=b.ssh_user, login_key=b.client_key_pem, host_key=b.host_public_key,
            host_key_confirmed_at=timezone.now(),
            private_key_path=host.path_pattern("privkey.pem"),
            certificate_path=host.path_pattern("cert.pem"),
            ca_bundle_path=host.path_pattern("chain.pem"),
            fullchain_path=host.path_pattern("fullchain.pem"),
            document_root=str(b.webroot), backup_dir=str(b.backup_dir),
            config_test_command=b.config_test_command, reload_command=b.reload_command,
            tls_check_address=b.address, tls_check_port=b.tls_port,
            tls_sni_name="",  # the certificate's own name: one server block each
        )
    certificates = []
    for name, host in bed.assignments:
        cert = Certificate.objects.create(organization=organization, ca_account=ca,
                                          common_name=name, sans=[name],
                                          challenge=Challenge.HTTP_01)
        Deployment.objects.create(certificate=cert, host=portal_hosts[id(host)])
        certificates.append(cert)
    return certificates
