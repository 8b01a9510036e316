"""Webhooks reach only what the outbound policy allows, over https unless the
operator allows plain http, and never read or store more than a little of an answer."""

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from api import webhooks
from api.models import Webhook, WebhookDelivery

pytestmark = pytest.mark.django_db

SECRET = "s3cret-for-signing"


class Answering:
    """A real HTTP server on 127.0.0.1 answering every POST with ``status`` and a
    body of ``size`` bytes, made as it is sent (never held whole in memory)."""

    CHUNK = b"internal-secret " * 4096  # 64 KiB

    def __init__(self, status=500, size=64 * 1024):
        self.requests = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                server.requests.append(self.rfile.read(int(self.headers["Content-Length"])))
                self.send_response(status)
                self.send_header("Content-Length", str(size))
                self.end_headers()
                left = size
                try:
                    while left > 0:
                        piece = server.CHUNK[:left]
                        self.wfile.write(piece)
                        left -= len(piece)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the portal stopped reading: what it should do
                server.unsent = left

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_port
        self.url = f"http://127.0.0.1:{self.port}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def answering():
    server = Answering()
    yield server
    server.stop()


def hook(organization, url):
    return Webhook.objects.create(organization=organization, url=url, secret=SECRET,
                                  events=["renewal.succeeded"])


def emit_one(organization):
    [delivery] = webhooks.emit("renewal.succeeded", organization=organization, payload={})
    return delivery


def test_a_webhook_to_loopback_is_refused_for_good_when_the_policy_does_not_allow_it(
        organization, answering, settings):
    settings.OUTBOUND_ALLOW = []
    hook(organization, answering.url.replace("http://", "https://"))
    hook(organization, answering.url)

    for delivery in webhooks.emit("renewal.succeeded", organization=organization, payload={}):
        result = webhooks.deliver(delivery.pk)
        # Permanent: no retry can change the policy.
        assert (result.status, result.attempts, result.next_attempt_at) == ("failed", 1, None)
        assert "outbound policy" in result.error
        assert str(answering.port) not in result.error
    assert answering.requests == []


def test_a_webhook_to_a_name_that_resolves_to_loopback_is_refused(organization, answering,
                                                                  settings):
    settings.OUTBOUND_ALLOW = []
    hook(organization, f"https://localhost:{answering.port}/hook")
    result = webhooks.deliver(emit_one(organization).pk)
    assert result.status == "failed" and "outbound policy" in result.error
    assert answering.requests == []


def test_plain_http_to_a_host_the_setting_does_not_name_is_refused_at_delivery(
        organization, answering, settings):
    # The address is allowed only as a host:port pair for another port.
    settings.OUTBOUND_ALLOW = [f"127.0.0.1:{answering.port + 1}"]
    hook(organization, answering.url)
    result = webhooks.deliver(emit_one(organization).pk)
    assert result.status == "failed" and "outbound policy" in result.error
    assert answering.requests == []


def test_an_internal_receivers_answer_is_not_stored(organization, answering):
    hook(organization, answering.url)  # allowed: the tests allow 127.0.0.0/8
    result = webhooks.deliver(emit_one(organization).pk)
    assert result.status_code == 500 and result.error == "HTTP 500"
    assert "internal-secret" not in WebhookDelivery.objects.get(pk=result.pk).error


def test_an_excerpt_is_one_short_line_of_printable_text():
    text = webhooks.excerpt(b"<h1>Bad\x00 request</h1>\r\n\x1b[31m" + "é".encode() * 5000)
    assert text.startswith("<h1>Bad request</h1> [31mé")
    assert len(text) == webhooks.EXCERPT_CHARS and text.isprintable()


def current_rss_kib() -> int:
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")  # pragma: no cover


def peak_rss_kib() -> int:
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError("no VmHWM")  # pragma: no cover


def test_a_huge_answer_is_neither_read_nor_stored_and_does_not_grow_the_worker(organization):
    huge = Answering(size=100 * 1024 * 1024)
    try:
        hook(organization, huge.url)
        delivery = emit_one(organization)
        before = current_rss_kib()
        with open("/proc/self/clear_refs", "w") as reset:
            reset.write("5")  # the peak (VmHWM) starts again from now
        result = webhooks.deliver(delivery.pk)
        growth_kib = peak_rss_kib() - before
    finally:
        huge.stop()
    assert growth_kib < 8 * 1024, f"the worker grew by {growth_kib} KiB"
    assert result.status_code == 500
    assert len(WebhookDelivery.objects.get(pk=result.pk).error) <= 100
    assert huge.unsent > 90 * 1024 * 1024  # the portal hung up instead of draining it


def test_the_api_refuses_a_webhook_url_the_policy_does_not_allow_naming_the_field(
        owner, as_user, settings):
    settings.OUTBOUND_ALLOW = []
    api = as_user(owner)
    for url, words in [("http://hooks.example.test/in", "https://"),
                       ("https://127.0.0.1:8443/in", "outbound policy"),
                       ("https://localhost/in", "outbound policy"),
                       ("https://[::ffff:169.254.169.254]/latest", "outbound policy")]:
        response = api.post("/api/v1/webhooks/", {"url": url, "secret": SECRET * 2,
                                                  "events": ["renewal.succeeded"]},
                            format="json")
        assert response.status_code == 400, (url, response.content)
        [error] = response.json()["errors"]
        assert error["field"] == "url" and words in error["message"], (url, error)
    assert not Webhook.objects.exists()

    settings.OUTBOUND_ALLOW = ["127.0.0.0/8"]  # what an operator allows is taken
    response = api.post("/api/v1/webhooks/", {"url": "http://127.0.0.1:8080/in",
                                              "secret": SECRET * 2,
                                              "events": ["renewal.succeeded"]}, format="json")
    assert response.status_code == 201, response.content
