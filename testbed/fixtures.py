"""pytest plugin: the peers as fixtures. Load with ``pytest_plugins = ["testbed.fixtures"]``.

Every daemon is stopped by a finalizer registered *before* it starts, so a
failed start-up or a failing test never leaves it running.
"""

from collections.abc import Iterator

import pytest

from .bind import BindServer
from .hosts import TargetHost, TargetHostFactory
from .mail import DovecotServer, EximServer
from .pebble import Pebble, PebbleFactory
from .ports import free_port
from .powerdns import PowerDNS
from .receiver import Receiver
from .smtp import Inbox


@pytest.fixture(scope="session")
def bind_dns(request, tmp_path_factory) -> BindServer:
    """BIND serving ``example.test`` with TSIG-signed TXT updates.

    ``address``, ``port``, ``zone``, ``tsig_key_name``, ``tsig_algorithm``,
    ``tsig_secret`` (base64), ``keyring``; ``txt(name) -> list[str]`` and
    ``query(name, rdtype)`` ask the server directly. Names: ``@``, ``ns1``,
    ``*`` -> 127.0.0.1; ``hN`` and ``*.hN`` -> 127.0.0.N for N in 2..60.
    """
    server = BindServer(tmp_path_factory.mktemp("testbed-bind"))
    request.addfinalizer(server.stop)
    server.start()
    return server


@pytest.fixture(scope="session")
def powerdns(request, tmp_path_factory, bind_dns) -> PowerDNS:
    """PowerDNS with its HTTP API serving ``example.net`` at 127.0.1.1 on BIND's
    port (BIND forwards that zone to it, so Pebble and the portal's lookups find
    it); ``api_url``, ``api_key``, ``txt(name)``, ``query(name, rdtype)``. It also
    answers at 127.0.1.2 as ``lag.test``'s second name server, which never serves
    what is written at BIND."""
    server = PowerDNS(tmp_path_factory.mktemp("testbed-powerdns"), port=bind_dns.port)
    request.addfinalizer(server.stop)
    server.start()
    return server


@pytest.fixture(scope="session")
def acme_http_port() -> int:
    """The one HTTP-01 port of the session: every Pebble validates there and
    every target host's nginx listens there (on its own address)."""
    return free_port("127.0.0.1")


@pytest.fixture(scope="session")
def pebble_factory(request, tmp_path_factory, bind_dns, acme_http_port) -> PebbleFactory:
    """``pebble_factory(*, eab_keys=None, nonce_reject=0, validity_seconds=None) -> Pebble``,
    started.

    ``eab_keys`` ({kid: base64url HMAC key}) makes External Account Binding
    required; ``nonce_reject`` is PEBBLE_WFE_NONCEREJECT in percent (None
    keeps Pebble's default of 5); ``validity_seconds`` is the lifetime of the
    certificates it issues (certificateValidityPeriod; default five years).
    A Pebble has ``directory_url``, ``ca_bundle``, ``http_port``,
    ``management_url``, ``root_pem()``, ``intermediate_pem()``, ``stop()`` and
    ``start()`` (same ports).
    """
    factory = PebbleFactory(tmp_path_factory, http_port=acme_http_port,
                            dns_server=f"{bind_dns.address}:{bind_dns.port}")
    request.addfinalizer(factory.stop_all)
    return factory


@pytest.fixture(scope="session")
def pebble(pebble_factory) -> Pebble:
    """The session's default Pebble: no EAB, never rejects a nonce."""
    return pebble_factory(nonce_reject=0)


@pytest.fixture(scope="session")
def target_host_factory(request, tmp_path_factory, acme_http_port) -> TargetHostFactory:
    """``target_host_factory() -> TargetHost``: a new sshd + nginx at 127.0.0.N
    named ``hN.example.test`` (see ``testbed.hosts.TargetHost``); all are
    stopped at session end."""
    factory = TargetHostFactory(tmp_path_factory, http_port=acme_http_port)
    request.addfinalizer(factory.stop_all)
    return factory


@pytest.fixture
def target_host(target_host_factory) -> Iterator[TargetHost]:
    """One fresh target host for this test, stopped when the test ends."""
    host = target_host_factory()
    yield host
    host.stop()


@pytest.fixture(scope="session")
def exim_smtp(request) -> EximServer:
    """Exim on 127.0.0.1: SMTP with STARTTLS on ``starttls_port``, without it on
    ``plain_port``; its certificate (``mail.example.test``, 127.0.0.1) is signed
    by ``ca_pem``, its leaf's fingerprint ``leaf_sha256``."""
    server = EximServer()
    request.addfinalizer(server.stop)
    server.start()
    return server


@pytest.fixture(scope="session")
def dovecot_mail(request) -> DovecotServer:
    """Dovecot on 127.0.0.1: IMAP (``imap_port``) and POP3 (``pop3_port``), both
    with STARTTLS; ``ca_pem`` and ``leaf_sha256`` as for ``exim_smtp``."""
    server = DovecotServer()
    request.addfinalizer(server.stop)
    server.start()
    return server


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """An HTTP receiver for notification channels (``receiver.url`` is a json://
    apprise URL with a password; ``receiver.received`` the bodies), stopped
    when the test ends."""
    served = Receiver()
    yield served
    served.stop()


@pytest.fixture
def smtp_inbox(settings) -> Iterator[Inbox]:
    """Django's mail sent through SMTP to an aiosmtpd server on loopback;
    ``smtp_inbox.envelopes`` what it accepted. Stopped when the test ends."""
    inbox = Inbox()
    inbox.start()
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = inbox.host, inbox.port
    settings.EMAIL_USE_TLS = settings.EMAIL_USE_SSL = False
    yield inbox
    inbox.stop()
