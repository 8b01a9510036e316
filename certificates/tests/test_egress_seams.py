"""Every outbound path of the seams goes through the outbound policy: the CA's
directory (and any redirect from it), a host's SSH and TLS addresses, a DNS server.
Refusals are permanent; failures of an allowed peer read the same whatever
answered, so that the portal cannot be used to probe ports."""

import json
import socket
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests
from django.core.exceptions import ValidationError

from certificates.hosts import enrolment
from certificates.models import CAAccount, TargetHost
from certificates.seams import acme, acme_protocol, dns, ssh, tls
from certificates.tests.installing import install_now
from testbed.ports import free_port

from .factories import portal_host, version_for

NOTHING_ALLOWED = []


class Server:
    """A real HTTP(S) server on 127.0.0.1 giving every GET the same answer."""

    def __init__(self, *, status=200, headers=None, body=b"", tls_files=None):
        self.requests = []
        seen = self.requests

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                seen.append(self.path)
                self.send_response(status)
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                try:
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            do_HEAD = do_GET

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        if tls_files:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(*tls_files)
            self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.port = self.server.server_port
        scheme = "https" if tls_files else "http"
        self.url = f"{scheme}://127.0.0.1:{self.port}/dir"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def servers():
    started = []

    def start(**kwargs):
        started.append(Server(**kwargs))
        return started[-1]

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def silent_port():
    """A port that accepts connections and never says a word."""
    listener = socket.create_server(("127.0.0.1", 0))
    yield listener.getsockname()[1]
    listener.close()


def same_words(messages, ports):
    """The messages with their ports taken out: what tells one failure from another."""
    return {message.replace(str(port), "PORT") for message, port in zip(messages, ports,
                                                                      strict=True)}


# -- the CA ---------------------------------------------------------------------------


def new_ca(url, pebble, timeout=10):
    return acme.CA.connect(directory_url=url, account_key_pem=acme.new_account_key(),
                   verify=str(pebble.ca_bundle), timeout=timeout)


def test_a_ca_directory_on_loopback_is_refused_unless_allowed(pebble, settings):
    settings.OUTBOUND_ALLOW = NOTHING_ALLOWED
    for url in (pebble.directory_url, pebble.directory_url.replace("127.0.0.1", "localhost")):
        with pytest.raises(acme.AcmeError) as refused:
            new_ca(url, pebble)
        assert not refused.value.transient and "outbound policy" in str(refused.value)

    settings.OUTBOUND_ALLOW = ["127.0.0.0/8"]
    assert new_ca(pebble.directory_url, pebble).ensure_account()


def test_a_redirect_from_the_ca_to_a_refused_address_is_not_followed(
        pebble, pebble_factory, servers, settings):
    hop = servers(status=302, headers={"Location": pebble.directory_url},
                  tls_files=(pebble_factory.listener_cert, pebble_factory.listener_key))
    # The first server is allowed by its host:port pair; Pebble's port is not.
    settings.OUTBOUND_ALLOW = [f"127.0.0.1:{hop.port}"]

    with pytest.raises(acme.AcmeError) as refused:
        new_ca(hop.url, pebble)

    assert hop.requests == ["/dir"]
    assert not refused.value.transient and "outbound policy" in str(refused.value)


def test_a_ca_answer_beyond_the_cap_is_refused_unread(pebble, pebble_factory, servers):
    directory = requests.get(pebble.directory_url, verify=pebble.ca_bundle, timeout=10).json()
    directory["padding"] = "x" * (2 * acme_protocol.MAX_RESPONSE_BYTES)
    huge = servers(body=json.dumps(directory).encode(),
                   headers={"Content-Type": "application/json"},
                   tls_files=(pebble_factory.listener_cert, pebble_factory.listener_key))

    with pytest.raises(acme.AcmeError) as refused:
        new_ca(huge.url, pebble)

    assert not refused.value.transient and "larger than" in str(refused.value)


def test_a_ca_directory_url_must_be_https(organization, pebble):
    account = CAAccount(organization=organization, name="plain", contact_email="a@b.test",
                        directory_url="http://acme.example.test/directory")
    with pytest.raises(ValidationError) as invalid:
        account.full_clean()
    assert "https://" in " ".join(invalid.value.message_dict["directory_url"])

    with pytest.raises(acme.AcmeError) as refused:
        new_ca(pebble.directory_url.replace("https://", "http://"), pebble)
    assert not refused.value.transient and "https://" in str(refused.value)


def test_an_unreachable_ca_reads_the_same_whatever_answered(pebble, servers, silent_port):
    closed = free_port("127.0.0.1")
    plain = servers()  # HTTP where TLS was expected
    ports = [closed, plain.port, silent_port]
    messages = []
    for port in ports:
        with pytest.raises(acme.AcmeError) as failed:
            new_ca(f"https://127.0.0.1:{port}/dir", pebble, timeout=0.5)
        assert failed.value.transient
        messages.append(str(failed.value))
    assert len(same_words(messages, ports)) == 1, messages


# -- SSH ------------------------------------------------------------------------------


@pytest.fixture
def version(organization, target_host):
    return version_for(organization, target_host.sni_name)


@pytest.mark.django_db
def test_fetching_a_host_key_from_loopback_is_refused_unless_allowed(
        organization, target_host, owner, settings):
    new_host = portal_host(organization, target_host, confirmed=False)
    settings.OUTBOUND_ALLOW = NOTHING_ALLOWED
    for address in (target_host.address, "localhost"):
        with pytest.raises(ssh.OutboundRefused) as refused:
            ssh.fetch_host_key(address, target_host.ssh_port)
        assert not refused.value.transient and "outbound policy" in str(refused.value)
    with pytest.raises(ssh.OutboundRefused):
        enrolment.fetch_and_pin_host_key(host_id=new_host.pk, by=owner)
    assert TargetHost.objects.get(pk=new_host.pk).host_key == ""

    settings.OUTBOUND_ALLOW = ["127.0.0.0/8"]
    assert enrolment.fetch_and_pin_host_key(host_id=new_host.pk, by=owner)


@pytest.mark.django_db
def test_a_deployment_to_a_refused_address_fails_permanently_and_writes_nothing(
        organization, target_host, version, settings):
    host = portal_host(organization, target_host)
    before = target_host.fullchain_path.read_bytes()
    settings.OUTBOUND_ALLOW = NOTHING_ALLOWED

    outcome = install_now(version, host)

    assert (outcome.ok, outcome.transient, outcome.error_kind) == (False, False,
                                                                   "OutboundRefused")
    assert target_host.fullchain_path.read_bytes() == before
    [check] = enrolment.test_connection(host_id=host.pk)
    assert not check.ok and "outbound policy" in check.detail


def test_ssh_failures_read_the_same_whatever_answered(servers, silent_port):
    closed = free_port("127.0.0.1")
    web = servers()  # answers, but not with an SSH banner
    ports = [closed, web.port, silent_port]
    messages = []
    for port in ports:
        with pytest.raises(ssh.Unreachable) as failed:
            ssh.fetch_host_key("127.0.0.1", port, timeout=0.5)
        messages.append(str(failed.value))
    assert len(same_words(messages, ports)) == 1, messages


# -- the TLS check ----------------------------------------------------------------------


def test_a_tls_check_of_a_refused_address_fails_permanently(target_host, settings):
    settings.OUTBOUND_ALLOW = NOTHING_ALLOWED
    for address in (target_host.address, "localhost"):
        with pytest.raises(tls.TLSCheckError) as refused:
            tls.served_leaf_sha256(address, target_host.tls_port, target_host.sni_name,
                                   timeout=2)
        assert not refused.value.transient and "outbound policy" in str(refused.value)

    settings.OUTBOUND_ALLOW = ["127.0.0.0/8"]
    assert tls.served_leaf_sha256(target_host.address, target_host.tls_port,
                                  target_host.sni_name, timeout=2)


def test_tls_check_failures_read_the_same_whatever_answered(servers, silent_port):
    closed = free_port("127.0.0.1")
    web = servers()  # plain HTTP where TLS was expected
    ports = [closed, web.port, silent_port]
    messages = []
    for port in ports:
        with pytest.raises(tls.TLSCheckError) as failed:
            tls.served_leaf_sha256("127.0.0.1", port, "www.example.test", timeout=0.5)
        assert failed.value.transient
        messages.append(str(failed.value))
    assert len(same_words(messages, ports)) == 1, messages


# -- DNS updates ----------------------------------------------------------------------------


def server_of(bind_dns, address=None, port=None, timeout=5):
    return dns.Server(address=address or bind_dns.address, port=port or bind_dns.port,
                      key_name=bind_dns.tsig_key_name, secret=bind_dns.tsig_secret,
                      algorithm=bind_dns.tsig_algorithm, timeout=timeout)


def test_a_dns_update_to_a_refused_server_fails_permanently_and_writes_nothing(
        bind_dns, settings):
    name = "_acme-challenge.egress.example.test"
    settings.OUTBOUND_ALLOW = NOTHING_ALLOWED
    for address in (bind_dns.address, "localhost"):
        with pytest.raises(dns.DNSUpdateError) as refused:
            dns.add_txt(server_of(bind_dns, address), name, "refused-value")
        assert not refused.value.transient and "outbound policy" in str(refused.value)
    assert bind_dns.txt(name) == []

    settings.OUTBOUND_ALLOW = ["127.0.0.0/8"]
    dns.add_txt(server_of(bind_dns), name, "allowed-value")
    dns.delete_txt(server_of(bind_dns), name, "allowed-value")


def test_dns_failures_read_the_same_whatever_answered(bind_dns, silent_port):
    closed = free_port("127.0.0.1")
    ports = [closed, silent_port]
    messages = []
    for port in ports:
        with pytest.raises(dns.DNSUpdateError) as failed:
            dns.add_txt(server_of(bind_dns, port=port, timeout=0.5),
                        "_acme-challenge.example.test", "v")
        assert failed.value.transient
        messages.append(str(failed.value))
    assert len(same_words(messages, ports)) == 1, messages
