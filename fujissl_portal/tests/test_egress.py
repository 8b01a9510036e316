"""The outbound policy itself: which addresses a tenant's settings may reach, checked
at the moment of connecting, through names, redirects and requests sessions alike."""

import ipaddress
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

from fujissl_portal import egress


def ip(text):
    return ipaddress.ip_address(text)


@pytest.fixture
def nothing_allowed(settings):
    settings.OUTBOUND_ALLOW = []


@pytest.fixture
def listener():
    """A TCP listener on loopback that accepts and says nothing."""
    server = socket.create_server(("127.0.0.1", 0))
    yield server.getsockname()[1]
    server.close()


class Redirector:
    """A real HTTP server on loopback answering every GET with ``status`` and,
    for a redirect, a Location."""

    def __init__(self, status=200, location=None, body=b"ok"):
        seen = self.requests = []

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                seen.append(self.path)
                self.send_response(status)
                if location:
                    self.send_header("Location", location)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_port
        self.url = f"http://127.0.0.1:{self.port}/"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.mark.parametrize("address", [
    "127.0.0.1", "127.9.9.9", "::1", "10.1.2.3", "172.16.0.1", "192.168.1.1", "169.254.1.1",
    "fe80::1", "fd12::1", "224.0.0.1", "ff02::1", "0.0.0.0", "::", "240.0.0.1",
    "100.64.0.1", "169.254.169.254", "fd00:ec2::254", "::ffff:127.0.0.1", "::ffff:10.0.0.1",
    "::ffff:169.254.169.254", "64:ff9b::7f00:1", "2002:7f00:1::1", "2002:a9fe:a9fe::1",
])
def test_internal_special_and_metadata_addresses_are_refused_by_default(address):
    assert egress.is_restricted(ip(address))
    assert not egress.permitted("peer", 443, ip(address), egress.parse_rules([]))


@pytest.mark.parametrize("address", ["93.184.215.14", "2606:4700::6810:84e5",
                                     "::ffff:93.184.215.14"])
def test_public_addresses_are_permitted(address):
    assert egress.permitted("peer", 443, ip(address), egress.parse_rules([]))


def test_a_listed_network_allows_its_addresses_and_no_others():
    rules = egress.parse_rules(["127.0.0.0/8", "10.1.0.0/16"])
    assert egress.permitted("peer", 22, ip("127.0.0.2"), rules)
    assert egress.permitted("peer", 22, ip("10.1.200.3"), rules)
    assert egress.permitted("peer", 22, ip("::ffff:127.0.0.1"), rules)  # unwrapped
    assert not egress.permitted("peer", 22, ip("10.2.0.1"), rules)
    assert not egress.permitted("peer", 22, ip("::1"), rules)


def test_a_host_port_pair_allows_that_port_only():
    rules = egress.parse_rules(["ca.internal:8443", "[fd00::5]:53", "10.9.9.9:22"])
    assert egress.permitted("ca.internal", 8443, ip("10.0.0.7"), rules)
    assert egress.permitted("CA.Internal.", 8443, ip("10.0.0.7"), rules)
    assert not egress.permitted("ca.internal", 443, ip("10.0.0.7"), rules)
    assert egress.permitted("ns", 53, ip("fd00::5"), rules)
    assert egress.permitted("10.9.9.9", 22, ip("10.9.9.9"), rules)
    assert not egress.permitted("10.9.9.9", 2222, ip("10.9.9.9"), rules)


def test_a_metadata_address_needs_to_be_named_exactly():
    wide = egress.parse_rules(["169.254.0.0/16", "fd00::/8"])
    assert egress.permitted("peer", 80, ip("169.254.1.1"), wide)
    assert not egress.permitted("peer", 80, ip("169.254.169.254"), wide)
    assert not egress.permitted("peer", 80, ip("fd00:ec2::254"), wide)
    exact = egress.parse_rules(["169.254.169.254/32"])
    assert egress.permitted("peer", 80, ip("169.254.169.254"), exact)


@pytest.mark.parametrize("entry", ["not a network", "host:", "host:99999", ":80", "10.0.0.0/33"])
def test_a_malformed_setting_names_itself(entry):
    with pytest.raises(ValueError, match="OUTBOUND_ALLOW"):
        egress.parse_rules([entry])


def test_connect_refuses_a_loopback_address_unless_allowed(settings, listener):
    settings.OUTBOUND_ALLOW = []
    with pytest.raises(egress.Refused) as refused:
        egress.connect("127.0.0.1", listener, timeout=2)
    assert not refused.value.transient
    assert str(listener) not in str(refused.value)  # nothing about what listens where

    settings.OUTBOUND_ALLOW = ["127.0.0.0/8"]
    with egress.connect("127.0.0.1", listener, timeout=2) as sock:
        assert sock.getpeername() == ("127.0.0.1", listener)


def test_a_name_that_resolves_to_loopback_is_refused(nothing_allowed, listener):
    assert socket.gethostbyname("localhost") == "127.0.0.1"
    with pytest.raises(egress.Refused):
        egress.connect("localhost", listener, timeout=2)
    with pytest.raises(egress.Refused):
        egress.checked_address("localhost", 53)


def test_an_ipv4_mapped_ipv6_literal_is_refused(nothing_allowed, listener):
    with pytest.raises(egress.Refused):
        egress.connect("::ffff:127.0.0.1", listener, timeout=2)


def test_the_connection_goes_to_the_address_that_was_checked(settings, listener, monkeypatch):
    """A name that answers an allowed address to the check and another to a second
    lookup (DNS rebinding) never reaches the other: there is no second lookup."""
    settings.OUTBOUND_ALLOW = ["127.0.0.1/32"]
    answers = iter([("127.0.0.1", listener), ("127.0.0.3", listener)])
    lookups = []

    def rebinding(host, port, *args, **kwargs):
        lookups.append(host)
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", next(answers))]

    monkeypatch.setattr(socket, "getaddrinfo", rebinding)
    with egress.connect("rebind.example.test", listener, timeout=2) as sock:
        assert sock.getpeername() == ("127.0.0.1", listener)
    assert lookups == ["rebind.example.test"]


def test_a_session_refuses_a_loopback_url_unless_allowed(settings):
    server = Redirector()
    try:
        settings.OUTBOUND_ALLOW = []
        with pytest.raises(egress.Refused):
            egress.session(max_body=1024).get(server.url, timeout=5)
        assert server.requests == []
        settings.OUTBOUND_ALLOW = ["127.0.0.0/8"]
        assert egress.session(max_body=1024).get(server.url, timeout=5).text == "ok"
    finally:
        server.stop()


def test_a_redirect_to_a_refused_address_is_not_followed(settings):
    inside = Redirector(body=b"internal secret")
    outside = Redirector(status=302, location=inside.url)
    try:
        # The first server is allowed by its host:port pair; where it points is not.
        settings.OUTBOUND_ALLOW = [f"127.0.0.1:{outside.port}"]
        with pytest.raises(egress.Refused):
            egress.session(max_body=1024).get(outside.url, timeout=5)
        assert outside.requests == ["/"] and inside.requests == []
    finally:
        inside.stop()
        outside.stop()


def test_a_redirect_to_a_name_that_resolves_to_loopback_is_not_followed(settings):
    inside = Redirector(body=b"internal secret")
    outside = Redirector(status=302, location=f"http://localhost:{inside.port}/")
    try:
        settings.OUTBOUND_ALLOW = [f"127.0.0.1:{outside.port}"]
        with pytest.raises(egress.Refused):
            egress.session(max_body=1024).get(outside.url, timeout=5)
        assert inside.requests == []
    finally:
        inside.stop()
        outside.stop()


def test_a_session_reads_no_more_than_its_limit(settings):
    server = Redirector(body=b"x" * 100_000)
    try:
        with pytest.raises(egress.ResponseTooLarge):
            egress.session(max_body=10_000).get(server.url, timeout=5)
        kept = egress.session(max_body=10_000, truncate=True).get(server.url, timeout=5)
        assert kept.content == b"x" * 10_000
        assert kept.peer_address == "127.0.0.1"
    finally:
        server.stop()


def test_within_a_block_every_requests_session_of_this_thread_goes_through_the_policy(
        settings):
    server = Redirector()
    try:
        settings.OUTBOUND_ALLOW = []
        made_before = requests.Session()
        elsewhere = []
        with egress.every_requests_session(egress.Adapter(max_body=1024)):
            with pytest.raises(egress.Refused):
                made_before.get(server.url, timeout=5)
            with pytest.raises(egress.Refused):
                requests.get(server.url, timeout=5)  # a session of its own, as apprise's
            # Another thread, at the same time, keeps requests' own adapters.
            other = threading.Thread(
                target=lambda: elsewhere.append(requests.get(server.url, timeout=5).text))
            other.start()
            other.join()
        assert elsewhere == ["ok"] and server.requests == ["/"]
        assert made_before.get(server.url, timeout=5).text == "ok"  # its own adapter again
    finally:
        server.stop()


def test_plain_http_is_allowed_only_to_what_the_setting_names(settings):
    settings.OUTBOUND_ALLOW = ["127.0.0.0/8", "hooks.internal:8080"]
    assert egress.scheme_allowed("https://hooks.example.test/")
    assert egress.scheme_allowed("http://127.0.0.1:9/")
    assert egress.scheme_allowed("http://hooks.internal:8080/x")
    assert not egress.scheme_allowed("http://hooks.internal:8081/x")
    assert not egress.scheme_allowed("http://93.184.215.14/")
    settings.OUTBOUND_ALLOW = []
    assert not egress.scheme_allowed("http://127.0.0.1:9/")


def test_a_refusal_is_never_taken_for_a_network_failure():
    """Not an OSError, so that no seam's network handler mistakes it for a
    transient failure and retries it."""
    assert not issubclass(egress.Refused, (OSError, requests.RequestException))


def test_production_allows_no_internal_address_and_a_malformed_setting_stops_start_up(
        tmp_path, monkeypatch):
    from fujissl_portal.tests.commands import PRODUCTION, manage

    monkeypatch.delenv("OUTBOUND_ALLOW", raising=False)
    shown = manage(tmp_path, "shell", "-c",
                   "from django.conf import settings; print(settings.OUTBOUND_ALLOW)",
                   **PRODUCTION)
    assert shown.stdout.strip().splitlines()[-1] == "[]", shown.stdout + shown.stderr

    broken = manage(tmp_path, "check", OUTBOUND_ALLOW="10.0.0.0/8,intranet", **PRODUCTION)
    assert broken.returncode != 0
    assert "OUTBOUND_ALLOW: 'intranet'" in broken.stderr
