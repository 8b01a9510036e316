"""Warnings before a certificate is saved, from DNS as the testbed's BIND
serves it (testbed/bind.py): a name that does not resolve, and CAA records
(RFC 8659) that do not allow the CA account's CA. The page asks to confirm;
the API saves and answers them in `warnings`."""

import pytest
from django.urls import reverse
from rest_framework.test import APIClient

from certificates.models import Certificate
from certificates.renewal import name_warnings
from certificates.seams import dns_caa
from certificates.seams.dns_caa import CAA
from testbed.bind import CAA_ALLOWED

from .factories import ca_account

pytestmark = pytest.mark.django_db


@pytest.fixture
def ca(organization):
    # Pebble's directory lists no caaIdentities: the CA account holds the name a
    # commercial CA's directory gives, as its check would have read it.
    return ca_account(organization, caa_identities=[CAA_ALLOWED])


def codes(certificate):
    return sorted((w.code, w.name) for w in name_warnings.warnings_for(certificate))


def unsaved(ca, common_name, sans=(), challenge="http-01"):
    return Certificate(organization=ca.organization, ca_account=ca, common_name=common_name,
                       sans=list(sans), challenge=challenge)


def test_a_resolving_name_whose_caa_allows_the_ca_has_no_warning(bind_dns, ca):
    assert codes(unsaved(ca, "caa-allow.example.test")) == []


def test_a_name_without_caa_records_has_no_warning(bind_dns, ca):
    assert codes(unsaved(ca, "h2.example.test")) == []


def test_caa_records_of_another_ca_are_said_with_what_they_allow(bind_dns, ca):
    [warning] = name_warnings.warnings_for(unsaved(ca, "caa-deny.example.test"))

    assert warning.code == "caa_forbids"
    assert "other-ca.example" in warning.message and CAA_ALLOWED in warning.message


def test_a_wildcard_follows_issuewild_which_allows_no_ca(bind_dns, ca):
    assert codes(unsaved(ca, "*.caa-deny.example.test", challenge="dns-01")) == [
        ("caa_forbids", "*.caa-deny.example.test")]


def test_a_name_that_does_not_resolve_is_said_and_its_parents_caa_applies(bind_dns, ca):
    # Below caa-deny the zone's wildcard does not apply: no address, and the
    # CAA records found climbing up are caa-deny's.
    warnings = name_warnings.warnings_for(unsaved(ca, "www.caa-deny.example.test"))

    assert [w.code for w in warnings] == ["not_resolving", "caa_forbids"]
    assert "HTTP-01" in warnings[0].message


def test_a_ca_that_names_no_caa_identity_is_asked_to_be_checked(bind_dns, organization):
    unknown = ca_account(organization, name="Quiet CA", caa_identities=[])

    [warning] = name_warnings.warnings_for(unsaved(unknown, "caa-allow.example.test"))

    assert warning.code == "caa_unknown_ca" and CAA_ALLOWED in warning.message


def test_the_caa_rules_of_rfc_8659():
    issue = CAA(0, "issue", "ca.example; account=7")
    assert dns_caa.permits([issue], ["CA.example."], wildcard=False)
    assert not dns_caa.permits([issue], ["other.example"], wildcard=False)
    # Only iodef: issuance is not restricted.
    assert dns_caa.permits([CAA(0, "iodef", "mailto:a@example.test")], [], wildcard=False)
    # issuewild speaks for wildcards only; without it, issue does.
    wild = CAA(0, "issuewild", "wild.example")
    assert dns_caa.permits([issue, wild], ["wild.example"], wildcard=True)
    assert not dns_caa.permits([issue, wild], ["wild.example"], wildcard=False)
    assert dns_caa.permits([issue], ["ca.example"], wildcard=True)
    # A critical property the CA does not know forbids issuance.
    assert not dns_caa.permits([issue, CAA(128, "tbs", "x")], ["ca.example"], wildcard=False)


def form(ca, common_name, **fields):
    return {"common_name": common_name, "ca_account": ca.pk, "key_type": "ec-p256",
            "challenge": "http-01", **fields}


def test_the_page_warns_and_saves_only_when_confirmed(bind_dns, client, owner, ca):
    client.force_login(owner)

    shown = client.post(reverse("certificates:certificate_create"),
                        form(ca, "caa-deny.example.test"))

    assert shown.status_code == 200, shown
    assert not shown.context["form"].errors, shown.context["form"].errors
    assert 'id="name-warnings"' in shown.content.decode()
    assert "other-ca.example" in shown.content.decode()
    assert not Certificate.objects.exists()
    confirmed = client.post(reverse("certificates:certificate_create"),
                            form(ca, "caa-deny.example.test", acknowledge_warnings="1"))
    assert confirmed.status_code == 302
    assert Certificate.objects.filter(common_name="caa-deny.example.test").exists()


def test_the_page_saves_at_once_without_warnings(bind_dns, client, owner, ca):
    client.force_login(owner)

    response = client.post(reverse("certificates:certificate_create"),
                           form(ca, "caa-allow.example.test"))

    assert response.status_code == 302


def test_the_api_saves_and_answers_the_warnings(bind_dns, owner, ca):
    api = APIClient(HTTP_ACCEPT_LANGUAGE="en")
    api.force_authenticate(owner)

    response = api.post("/api/v1/certificates/", {
        "ca_account": ca.pk, "common_name": "caa-deny.example.test", "challenge": "http-01"},
        format="json")

    assert response.status_code == 201, response.data
    [warning] = response.data["warnings"]
    assert warning["code"] == "caa_forbids" and warning["name"] == "caa-deny.example.test"
    certificate_id = response.data["id"]
    assert api.get(f"/api/v1/certificates/{certificate_id}/").data["warnings"] == []
    # A change of the names is checked again.
    changed = api.patch(f"/api/v1/certificates/{certificate_id}/",
                        {"common_name": "caa-allow.example.test",
                         "sans": ["caa-allow.example.test"]}, format="json")
    assert changed.status_code == 200 and changed.data["warnings"] == []
