"""DNS-01 with DNS credentials, end to end: Pebble validating through BIND (RFC
2136) and PowerDNS (its HTTP API through dns-lexicon), across a CNAME chain from
one to the other, and across two zones on two servers."""

import pytest
from cryptography import x509

from certificates.dns01 import checking
from certificates.models import RenewalRun
from certificates.renewal.issuance import run_issuance
from certificates.tests.factories import (
    bind_credential,
    ca_account,
    dns01_certificate,
    powerdns_credential,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def ca(settings, organization, pebble):
    settings.ACME_CA_BUNDLE = str(pebble.ca_bundle)
    return ca_account(organization, directory_url=pebble.directory_url)


def issued_names(run):
    assert run.status == RenewalRun.Status.SUCCEEDED, (run.error, list(
        run.steps.values_list("name", "status", "detail")))
    leaf = x509.load_pem_x509_certificate(run.version.leaf_pem().encode())
    sans = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return sorted(sans.get_values_for_type(x509.DNSName))


def details(run, name="challenge"):
    return " | ".join(run.steps.filter(name=name).values_list("detail", flat=True))


def test_a_wildcard_and_apex_are_issued_through_bind_and_every_server_is_named(
        organization, ca, bind_dns):
    cert = dns01_certificate(organization, ca, bind_dns, ["*.h12.example.test", "h12.example.test"])

    run = run_issuance(certificate_id=cert.pk)

    assert issued_names(run) == ["*.h12.example.test", "h12.example.test"]
    assert "ns1.example.test (127.0.0.1) after" in details(run)
    assert bind_dns.txt("_acme-challenge.h12.example.test") == []


def test_a_wildcard_and_apex_are_issued_through_powerdns_by_lexicon(
        organization, ca, bind_dns, powerdns):
    credential = powerdns_credential(organization, powerdns)
    cert = dns01_certificate(organization, ca, bind_dns, ["*.example.net", "example.net"],
                             credentials=[credential])

    run = run_issuance(certificate_id=cert.pk)

    assert issued_names(run) == ["*.example.net", "example.net"]
    assert "ns1.example.net (127.0.1.1) after" in details(run)
    assert powerdns.txt("_acme-challenge.example.net") == []
    assert run.artefacts == []


def test_a_cname_chain_from_bind_to_powerdns_is_followed_and_shown(
        organization, ca, bind_dns, powerdns):
    both = [bind_credential(organization, bind_dns), powerdns_credential(organization, powerdns)]
    names = ["*.delegated.example.test", "delegated.example.test"]
    cert = dns01_certificate(organization, ca, bind_dns, names, credentials=both)

    run = run_issuance(certificate_id=cert.pk)

    assert issued_names(run) == sorted(names)
    assert ("_acme-challenge.delegated.example.test → _acme-challenge.delegated.example.net "
            "(PowerDNS)") in details(run)
    assert powerdns.txt("_acme-challenge.delegated.example.net") == []
    assert bind_dns.query("_acme-challenge.delegated.example.test", "TXT").answer[0].rdtype == 5


def test_a_certificate_spans_two_zones_on_two_servers(organization, ca, bind_dns, powerdns):
    both = [bind_credential(organization, bind_dns), powerdns_credential(organization, powerdns)]
    names = ["span.example.test", "*.span.example.net"]
    cert = dns01_certificate(organization, ca, bind_dns, names, credentials=both)

    run = run_issuance(certificate_id=cert.pk)

    assert issued_names(run) == sorted(names)
    assert "ns1.example.test (127.0.0.1)" in details(run)
    assert "ns1.example.net (127.0.1.1)" in details(run)
    assert bind_dns.txt("_acme-challenge.span.example.test") == []
    assert powerdns.txt("_acme-challenge.span.example.net") == []


def test_a_wrong_api_key_is_reported_by_the_test_and_permanent_at_issuance(
        organization, ca, bind_dns, powerdns):
    credential = powerdns_credential(organization, powerdns, api_key="not-the-key-0123")

    outcomes = checking.test(credential)

    assert [(o.step, o.ok) for o in outcomes] == [("write", False)]
    assert "refused the credential's authentication" in outcomes[0].detail
    assert "not-the-key-0123" not in outcomes[0].detail
    cert = dns01_certificate(organization, ca, bind_dns, ["*.h13.example.net"],
                             credentials=[credential])
    run = run_issuance(certificate_id=cert.pk)
    assert run.status == RenewalRun.Status.FAILED
    assert run.error_class == "permanent"
    assert "authentication" in run.error and "not-the-key-0123" not in run.error


def test_the_credential_test_writes_sees_served_everywhere_and_deletes(
        organization, bind_dns, powerdns):
    for credential in (bind_credential(organization, bind_dns, zones=["example.test"]),
                       powerdns_credential(organization, powerdns)):
        outcomes = checking.test(credential)

        assert [(o.step, o.ok) for o in outcomes] == [
            ("write", True), ("served", True), ("delete", True)], outcomes
        name = outcomes[0].detail.rsplit(" ", 1)[-1]
        assert bind_dns.txt(name) == [] and powerdns.txt(name) == []


def test_a_server_that_never_serves_the_value_is_named(organization, ca, bind_dns, powerdns,
                                                       settings):
    settings.DNS_PROPAGATION_TIMEOUT = 1.5
    credential = bind_credential(organization, bind_dns, zones=["lag.test"])

    outcomes = checking.test(credential)

    assert [(o.step, o.ok) for o in outcomes] == [
        ("write", True), ("served", False), ("delete", True)]
    assert outcomes[1].detail.startswith("ns2.lag.test (127.0.1.2) did not serve")
    assert "ns1.example.test (127.0.0.1) after" in outcomes[1].detail

    cert = dns01_certificate(organization, ca, bind_dns, ["*.lag.test"], credentials=[credential])
    run = run_issuance(certificate_id=cert.pk)
    assert run.status == RenewalRun.Status.FAILED and run.error_class == "transient"
    failed = run.steps.get(name="challenge", status="failed").detail
    assert "ns2.lag.test (127.0.1.2) did not serve" in failed
    assert bind_dns.txt("_acme-challenge.lag.test") == []


def test_the_api_test_action_reports_a_wrong_key_step_by_step(organization, owner, bind_dns,
                                                              powerdns):
    from rest_framework.test import APIClient

    credential = powerdns_credential(organization, powerdns, api_key="not-the-key-0123")
    api = APIClient(HTTP_ACCEPT_LANGUAGE="en")
    api.force_authenticate(owner)

    response = api.post(f"/api/v1/dns-credentials/{credential.pk}/test/")

    assert response.status_code == 200
    assert response.data["ok"] is False
    [step] = response.data["steps"]
    assert step["step"] == "write" and "authentication" in step["detail"]
    assert "not-the-key-0123" not in str(response.data)


def test_the_api_shows_each_names_chain_and_refuses_acme_dns_without_its_credential(
        organization, owner, bind_dns, powerdns):
    from rest_framework.test import APIClient

    both = [bind_credential(organization, bind_dns), powerdns_credential(organization, powerdns)]
    cert = dns01_certificate(organization, ca_account(organization), bind_dns,
                             ["*.delegated.example.test", "h14.example.test"], credentials=both)
    api = APIClient(HTTP_ACCEPT_LANGUAGE="en")
    api.force_authenticate(owner)

    chains = api.get(f"/api/v1/certificates/{cert.pk}/dns-chains/").json()
    refused = api.post(f"/api/v1/certificates/{cert.pk}/acme-dns/")

    assert chains == [
        {"name": "*.delegated.example.test", "credential": both[1].pk, "error": "",
         "chain": ["_acme-challenge.delegated.example.test",
                   "_acme-challenge.delegated.example.net"]},
        {"name": "h14.example.test", "credential": both[0].pk, "error": "",
         "chain": ["_acme-challenge.h14.example.test"]}]
    assert refused.status_code == 409
