"""The DNS seams where the real peers cannot show it: the provider's failures
sorted (a 5xx, a lost connection), the egress policy around lexicon, acme-dns's
small API (no acme-dns server can be built here: it needs Go), a CNAME loop."""

import json

import pytest
import requests
from django.db import connection

from certificates.dns01 import acme_dns_names, writers
from certificates.models import DNSKind
from certificates.seams import acme_dns, dns_lookup, dns_providers
from certificates.seams.errors import FailureKind
from certificates.tests.factories import ca_account, dns01_certificate, dns_credential

KEY = "s3cret-api-key-0123"


def http_error(status, body=""):
    response = requests.Response()
    response.status_code, response._content = status, body.encode()
    response.url = f"https://dns.example.org/zones?key={KEY}"
    return requests.HTTPError(f"{status} for url: {response.url}", response=response)


ACCOUNT = dns_providers.Account(provider="powerdns", options={}, secrets={"auth_token": KEY})


@pytest.mark.parametrize("error,transient", [
    (http_error(401), False), (http_error(403), False), (http_error(404), False),
    (http_error(422), False), (http_error(429), True), (http_error(500), True),
    (http_error(503), True), (requests.ConnectionError(f"refused {KEY}"), True),
    (requests.ReadTimeout("read timed out"), True), (ValueError("Domain not found"), False),
])
def test_provider_failures_are_sorted_and_never_carry_the_secret(error, transient):
    sorted_error = dns_providers._sorted(error, ACCOUNT, "example.net")

    assert sorted_error.transient is transient
    assert sorted_error.kind == FailureKind.DNS_ERROR
    assert KEY not in str(sorted_error) and "powerdns" in str(sorted_error)


def test_lexicon_reaches_powerdns_only_through_the_egress_policy(settings, bind_dns, powerdns):
    account = dns_providers.Account(provider="powerdns", options={
        "pdns_server": powerdns.api_url}, secrets={"auth_token": powerdns.api_key}, timeout=5)
    settings.OUTBOUND_ALLOW = []

    with pytest.raises(dns_providers.PortalError) as refused:
        dns_providers.add_txt(account, "example.net", "_acme-challenge.egress.example.net", "v")

    assert not refused.value.transient
    assert refused.value.kind == FailureKind.OUTBOUND_REFUSED
    assert powerdns.txt("_acme-challenge.egress.example.net") == []


def test_an_api_key_never_goes_over_plain_http_to_a_public_address(settings):
    settings.OUTBOUND_ALLOW = []
    account = dns_providers.Account(provider="powerdns", options={
        "pdns_server": "http://192.0.2.10:8081"}, secrets={"auth_token": KEY}, timeout=1)

    with pytest.raises(dns_providers.PortalError) as refused:
        dns_providers.add_txt(account, "example.net", "_acme-challenge.example.net", "v")

    assert refused.value.kind == FailureKind.OUTBOUND_REFUSED and KEY not in str(refused.value)


def test_a_cname_loop_is_refused_naming_the_chain(bind_dns):
    lookup = dns_lookup.Lookup(resolvers=((bind_dns.address, bind_dns.port),),
                               port=bind_dns.port, timeout=2)

    with pytest.raises(dns_lookup.LookupError) as looped:
        dns_lookup.cname_chain(lookup, "_acme-challenge.loop.example.test")

    assert not looped.value.transient
    assert "_acme-challenge.loop2.example.test" in str(looped.value)


# -- acme-dns, at its HTTP seam ----------------------------------------------------


class AcmeDNSAnswers(requests.adapters.BaseAdapter):
    """What an acme-dns server answers (its README's API), for the client only."""

    def __init__(self, status=200):
        super().__init__()
        self.status, self.sent = status, []

    def send(self, request, **kwargs):
        self.sent.append(request)
        response = requests.Response()
        response.status_code, response.request, response.url = self.status, request, request.url
        if request.url.endswith("/register"):
            body = {"username": "u-1", "password": KEY, "subdomain": "d420c923",
                    "fulldomain": "d420c923.auth.example.org.", "allowfrom": []}
        else:
            body = {"txt": json.loads(request.body)["txt"]}
        response._content = json.dumps(body).encode() if self.status == 200 else KEY.encode()
        return response

    def close(self):
        pass


@pytest.fixture
def acme_dns_server(monkeypatch):
    answers = AcmeDNSAnswers()

    def session(**kwargs):
        mounted = requests.Session()
        mounted.mount("https://", answers)
        return mounted

    monkeypatch.setattr(acme_dns.egress, "session", session)
    return answers


@pytest.mark.django_db
def test_acme_dns_registers_each_name_once_and_updates_its_value(
        organization, acme_dns_server, bind_dns):
    credential = dns_credential(organization, name="acme-dns", kind=DNSKind.ACME_DNS,
                                zones=["auth.example.org"], server="https://auth.example.org")
    cert = dns01_certificate(organization, ca_account(organization), bind_dns,
                             ["*.www.example.test", "www.example.test"], credentials=[credential])

    made = acme_dns_names.delegations(cert)
    again = acme_dns_names.delegations(cert)

    assert [(d.record, d.target) for d in made] == [
        ("_acme-challenge.www.example.test", "d420c923.auth.example.org")]
    assert again == made and len(acme_dns_server.sent) == 1  # registered once
    with connection.cursor() as cursor:  # encrypted at rest
        cursor.execute("SELECT secrets FROM certificates_dnscredential")
        assert KEY not in cursor.fetchone()[0]
    credential.refresh_from_db()
    writers.writer(credential).add("d420c923.auth.example.org", "token-value")
    update = acme_dns_server.sent[-1]
    assert update.url == "https://auth.example.org/update"
    assert update.headers["X-Api-User"] == "u-1" and update.headers["X-Api-Key"] == KEY
    assert json.loads(update.body) == {"subdomain": "d420c923", "txt": "token-value"}


def test_acme_dns_failures_are_sorted_without_the_key(acme_dns_server):
    registration = acme_dns.Registration("u-1", KEY, "d420c923", "d420c923.auth.example.org")
    for status, transient in ((401, False), (400, False), (500, True)):
        acme_dns_server.status = status
        with pytest.raises(acme_dns.AcmeDNSError) as failed:
            acme_dns.update("https://auth.example.org", registration, "v", timeout=1)
        assert failed.value.transient is transient and KEY not in str(failed.value)


def test_removing_one_value_leaves_another_orders_value_at_the_same_name(bind_dns, powerdns):
    from certificates.seams import dns

    account = dns_providers.Account(provider="powerdns", options={
        "pdns_server": powerdns.api_url}, secrets={"auth_token": powerdns.api_key}, timeout=5)
    server = dns.Server(address=bind_dns.address, port=bind_dns.port,
                        key_name=bind_dns.tsig_key_name, secret=bind_dns.tsig_secret,
                        algorithm=bind_dns.tsig_algorithm, timeout=5)
    for add, delete, txt, name in (
            (lambda n, v: dns_providers.add_txt(account, "example.net", n, v),
             lambda n, v: dns_providers.delete_txt(account, "example.net", n, v),
             powerdns.txt, "_acme-challenge.both.example.net"),
            (lambda n, v: dns.add_txt(server, n, v), lambda n, v: dns.delete_txt(server, n, v),
             bind_dns.txt, "_acme-challenge.both.example.test")):
        add(name, "ours")
        add(name, "another-order")

        delete(name, "ours")

        assert txt(name) == ["another-order"]
        delete(name, "another-order")
        assert txt(name) == []
