"""Unit tests at the ACME seam, for what Pebble cannot show: ARI windows and their
Retry-After, `replaces`, a CA's errors of every kind, and the renewal schedule."""

import datetime
import json

import pytest
import requests
from acme import errors, messages
from django.utils import timezone, translation

from certificates.models import Certificate
from certificates.renewal.policy import renewal_time_by_lifetime, schedule_renewal
from certificates.seams import acme, acme_protocol
from certificates.tests.factories import ca_account, certificate, stored_version
from certificates.tests.pki import leaf_with_authority_key_id


@pytest.fixture
def ca(pebble):
    return acme.CA.connect(directory_url=pebble.directory_url,
                           account_key_pem=acme.new_account_key(),
                           contact_email="ops@example.test", verify=str(pebble.ca_bundle))


def response(status=200, body=None, headers=None):
    resp = requests.Response()
    resp.status_code = status
    resp._content = json.dumps(body or {}).encode()
    resp.headers.update({"Content-Type": "application/json", **(headers or {})})
    return resp


def offer_ari(ca, monkeypatch, window_response=None):
    directory = dict(ca._client.directory.to_partial_json())
    directory["renewalInfo"] = "https://127.0.0.1:1/renewal-info"
    monkeypatch.setattr(ca._client, "directory", messages.Directory(directory))
    if window_response is not None:
        monkeypatch.setattr(ca._net, "get", lambda url, **kw: window_response)


def window_body(start, end):
    return {"suggestedWindow": {"start": start.isoformat().replace("+00:00", "Z"),
                                "end": end.isoformat().replace("+00:00", "Z")}}


@pytest.fixture
def version(organization):
    cert = certificate(organization, ca_account(organization))
    key_pem, leaf_pem = leaf_with_authority_key_id("www.example.test")
    return stored_version(cert, key_pem, leaf_pem)


@pytest.mark.django_db
def test_the_renewal_time_is_a_random_point_inside_the_cas_ari_window(ca, monkeypatch, version):
    start = timezone.now() + datetime.timedelta(days=20)
    end = start + datetime.timedelta(days=2)
    offer_ari(ca, monkeypatch, response(body=window_body(start, end),
                                        headers={"Retry-After": "21600"}))
    before = timezone.now()

    renew_after = schedule_renewal(version.certificate, version, ca=ca)

    assert start <= renew_after <= end
    cert = Certificate.objects.get(pk=version.certificate_id)
    assert cert.renew_after == renew_after
    asked_again_in = cert.ari_next_check_at - before
    assert datetime.timedelta(hours=5, minutes=59) < asked_again_in < datetime.timedelta(hours=6,
                                                                                          minutes=1)


@pytest.mark.django_db
def test_a_window_already_open_means_renew_now(ca, monkeypatch, version):
    start = timezone.now() - datetime.timedelta(days=3)
    offer_ari(ca, monkeypatch, response(body=window_body(start, start + datetime.timedelta(
        days=1))))
    before = timezone.now()
    renew_after = schedule_renewal(version.certificate, version, ca=ca)
    assert before <= renew_after <= timezone.now()


@pytest.mark.django_db
def test_retry_after_as_an_http_date_is_honoured(ca, monkeypatch, version):
    start = datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=1)
    in_two_hours = datetime.datetime.now(datetime.UTC) + datetime.timedelta(hours=2)
    offer_ari(ca, monkeypatch, response(
        body=window_body(start, start + datetime.timedelta(hours=1)),
        headers={"Retry-After": in_two_hours.strftime("%a, %d %b %Y %H:%M:%S GMT")}))
    window = ca.renewal_window(version.leaf_pem())
    assert 2 * 3600 - 120 < window.retry_after_seconds <= 2 * 3600


@pytest.mark.django_db
def test_a_ca_without_renewal_info_gives_no_window(ca, version):
    assert ca.offers_renewal_info is False  # Pebble 2.4 does not offer ARI
    assert ca.renewal_window(version.leaf_pem()) is None


@pytest.mark.django_db
def test_without_ari_renewal_comes_when_a_third_of_the_lifetime_remains(version):
    assert renewal_time_by_lifetime(version) == version.not_after - version.lifetime() / 3


@pytest.mark.django_db
def test_a_short_lived_certificate_renews_at_half_its_lifetime(version):
    version.not_before = version.not_after - datetime.timedelta(days=6)
    assert renewal_time_by_lifetime(version) == version.not_after - datetime.timedelta(days=3)


def csr():
    from certificates.seams import keys

    return keys.make_csr(keys.generate_private_key("ec-p256"), ["h2.example.test"])


def posted_new_orders(ca, monkeypatch):
    sent = []
    post = ca._client._post

    def spy(url, obj, *args, **kwargs):
        if url == ca._client.directory["newOrder"]:
            sent.append(obj.to_partial_json())
        return post(url, obj, *args, **kwargs)

    monkeypatch.setattr(ca._client, "_post", spy)
    return sent


def test_a_renewal_names_the_certificate_it_replaces_where_the_ca_offers_ari(ca, monkeypatch):
    offer_ari(ca, monkeypatch)
    sent = posted_new_orders(ca, monkeypatch)
    ca.new_order(csr(), replaces="aYhba4dGQEHhs3uEe6CuLN4ByNQ.AIdlQyE")
    assert sent[0]["replaces"] == "aYhba4dGQEHhs3uEe6CuLN4ByNQ.AIdlQyE"


def test_replaces_is_not_sent_to_a_ca_without_ari(ca, monkeypatch):
    sent = posted_new_orders(ca, monkeypatch)
    ca.new_order(csr(), replaces="aYhba4dGQEHhs3uEe6CuLN4ByNQ.AIdlQyE")
    assert "replaces" not in sent[0]


def test_a_refused_replacement_is_ordered_again_without_replaces(ca, monkeypatch):
    offer_ari(ca, monkeypatch)
    sent = posted_new_orders(ca, monkeypatch)
    real = ca._client.new_order_replacing

    def refuse_replaces(csr_pem, replaces):
        if replaces:
            raise messages.Error.with_code("malformed", detail="certificate already replaced")
        return real(csr_pem, replaces)

    monkeypatch.setattr(ca._client, "new_order_replacing", refuse_replaces)
    order = ca.new_order(csr(), replaces="aYhba4dGQEHhs3uEe6CuLN4ByNQ.AIdlQyE")
    assert order.uri
    assert "replaces" not in sent[-1]


def raised_by(ca, exc, last_response=None):
    ca._net.last_response = last_response
    with pytest.raises(acme.AcmeError) as info, ca._errors():
        raise exc
    return info.value


@pytest.mark.parametrize("code", ["rateLimited", "serverInternal", "badNonce"])
def test_busy_ca_errors_are_transient(ca, code):
    asked = timezone.now()
    error = raised_by(ca, messages.Error.with_code(code, detail="slow down"),
                      response(429, headers={"Retry-After": "120"}))
    assert error.transient is True
    assert error.problem["type"].endswith(code)
    assert asked + datetime.timedelta(seconds=120) <= error.retry_after
    assert error.retry_after <= timezone.now() + datetime.timedelta(seconds=120)


@pytest.mark.parametrize("code", ["unauthorized", "caa", "rejectedIdentifier", "badCSR",
                                  "externalAccountRequired", "malformed"])
def test_refusals_are_permanent_and_keep_the_problem_document(ca, code):
    error = raised_by(ca, messages.Error.with_code(code, detail="no"), response(403))
    assert error.transient is False
    assert error.problem == {"type": messages.ERROR_PREFIX + code, "detail": "no"}
    assert "no" in str(error)


def test_a_ca_5xx_problem_is_transient(ca):
    error = raised_by(ca, messages.Error(typ="about:blank", detail="bad gateway"),
                      response(502))
    assert error.transient is True


@pytest.mark.parametrize("exc", [requests.ConnectionError("refused"), requests.Timeout("slow"),
                                 errors.TimeoutError(), errors.BadNonce("n", "e")])
def test_network_failures_and_timeouts_are_transient(ca, exc):
    assert raised_by(ca, exc).transient is True


def test_a_non_json_error_response_is_sorted_by_its_status(ca):
    assert raised_by(ca, errors.ClientError(response(503))).transient is True
    assert raised_by(ca, errors.ClientError(response(404))).transient is False


def test_a_problem_is_shown_to_people_in_words_with_each_name():
    with translation.override("en"):
        words = _english_problem_words()
    assert "could not confirm control" in words
    assert "www.example.test: connection refused" in words


def _english_problem_words():
    return acme.describe_problem({
        "type": messages.ERROR_PREFIX + "unauthorized", "detail": "Validation failed.",
        "subproblems": [{"type": messages.ERROR_PREFIX + "connection",
                         "detail": "connection refused",
                         "identifier": {"type": "dns", "value": "www.example.test"}}]})


# -- the environment, read once per CA ------------------------------------------------


def network(verify=True):
    import josepy as jose
    from cryptography.hazmat.primitives import serialization

    key = serialization.load_pem_private_key(acme.new_account_key().encode(), password=None)
    return acme_protocol.Network(jose.JWKEC(key=key), alg=jose.ES256, verify_ssl=verify)


def test_proxy_variables_still_apply_though_read_once(monkeypatch):
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example.test:3128")
    monkeypatch.setenv("NO_PROXY", "internal-ca.example.test")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/ssl/corporate.pem")

    public, internal, pinned = network(), network(), network(verify="/etc/portal/ca.pem")
    public.read_environment_once("https://acme.example.test/directory")
    internal.read_environment_once("https://internal-ca.example.test/directory")
    pinned.read_environment_once("https://acme.example.test/directory")

    assert public.session.proxies["https"] == "http://proxy.example.test:3128"
    assert "https" not in internal.session.proxies  # NO_PROXY
    assert public.verify_ssl == "/etc/ssl/corporate.pem"
    assert pinned.verify_ssl == "/etc/portal/ca.pem"  # ACME_CA_BUNDLE wins
    # requests no longer scans the environment at each request:
    assert not public.session.trust_env


def test_a_proxy_that_is_bypassed_lets_the_ca_be_reached(pebble, settings, monkeypatch):
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:9")  # nothing listens there
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    settings.ACME_CA_BUNDLE = str(pebble.ca_bundle)

    ca = acme.CA.connect(directory_url=pebble.directory_url, account_key_pem=acme.new_account_key(),
                 verify=str(pebble.ca_bundle), timeout=10)

    assert ca.ensure_account()
