"""The inventory's API: import (PEM, PKCS#12), refusals that name the field and
save nothing, the JSON export of every certificate, endpoints, tenancy."""

import base64

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs12

from certificates.models import AuditEvent, DNSKind, InventoryCertificate, MonitoredEndpoint
from certificates.tests import factories, pki

from .conftest import client_for, make_token

pytestmark = pytest.mark.django_db


def chain(name="api.example.test"):
    ca_key, key = pki.private_key(), pki.private_key()
    ca = pki.issue("API CA", ca_key.public_key(), ca_key, ca=True, days=3650)
    leaf = pki.issue(name, key.public_key(), ca_key, issuer="API CA", ca=False, names=[name])
    return key, leaf, ca


@pytest.fixture
def api(operator):
    return client_for(make_token(operator)[1])


def test_a_pem_bundle_and_a_pkcs12_file_are_imported(api, organization):
    key, leaf, ca = chain()
    response = api.post("/api/v1/inventory/import/", {
        "pem": pki.cert_pem(leaf) + pki.cert_pem(ca) + pki.key_pem(key)}, format="json")
    assert response.status_code == 201, response.json()
    [row] = response.json()["created"]
    assert row["common_name"] == "api.example.test" and row["has_private_key"]
    assert "private_key" not in row and "PRIVATE" not in response.content.decode()
    key2, leaf2, ca2 = chain("p12.example.test")
    data = pkcs12.serialize_key_and_certificates(b"x", key2, leaf2, [ca2],
                                                 serialization.BestAvailableEncryption(b"pw"))
    response = api.post("/api/v1/inventory/import/", {
        "pkcs12": base64.b64encode(data).decode(), "password": "pw"}, format="json")
    assert response.status_code == 201, response.json()
    assert api.get("/api/v1/inventory/").json()["count"] == 2


@pytest.mark.parametrize(("body", "field", "words"), [
    ({"pem": "not a certificate"}, "pem", "neither PEM nor a PKCS#12"),
    ({"pkcs12": "%%%"}, "pkcs12", "base64"),
    ({}, "pem", "PEM text or a PKCS#12"),
    ({"pem": "x", "colour": "red"}, "colour", ""),
])
def test_bad_input_is_a_400_naming_the_field(api, body, field, words):
    response = api.post("/api/v1/inventory/import/", body, format="json")
    assert response.status_code == 400
    errors = response.json()["errors"]
    assert any(e["field"] == field and words in e["message"] for e in errors), errors
    assert not InventoryCertificate.objects.exists()


def test_a_key_that_does_not_match_is_refused_and_nothing_saved(api):
    _, leaf, ca = chain()
    response = api.post("/api/v1/inventory/import/", {
        "pem": pki.cert_pem(leaf) + pki.key_pem(pki.private_key())}, format="json")
    assert response.status_code == 400
    assert "does not match" in response.json()["errors"][0]["message"]
    assert not InventoryCertificate.objects.exists()


def test_the_export_lists_every_certificate_managed_or_not(api, world):
    _, leaf, _ = chain()
    api.post("/api/v1/inventory/import/", {"pem": pki.cert_pem(leaf)}, format="json")
    rows = api.get("/api/v1/inventory/export/").json()
    assert {(r["common_name"], r["managed"]) for r in rows} == {
        (world["certificate"].common_name, True), ("api.example.test", False)}
    managed = next(r for r in rows if r["managed"])
    assert managed["deployed_or_served_at"] == [world["host"].name]
    assert managed["signature_algorithm"] and managed["key_size"]


def test_a_viewer_may_read_but_not_import(viewer):
    api = client_for(make_token(viewer)[1])
    assert api.get("/api/v1/inventory/").status_code == 200
    _, leaf, _ = chain()
    response = api.post("/api/v1/inventory/import/", {"pem": pki.cert_pem(leaf)},
                        format="json")
    assert response.status_code == 400  # no organisation where the viewer may write
    assert not InventoryCertificate.objects.exists()


def test_an_outsider_finds_nothing(api, outsider, organization):
    _, leaf, _ = chain()
    api.post("/api/v1/inventory/import/", {"pem": pki.cert_pem(leaf)}, format="json")
    row = InventoryCertificate.objects.get()
    endpoint = MonitoredEndpoint.objects.create(organization=organization, address="a.test")
    other = client_for(make_token(outsider)[1])
    assert other.get(f"/api/v1/inventory/{row.pk}/").status_code == 404
    assert other.get(f"/api/v1/endpoints/{endpoint.pk}/").status_code == 404
    assert other.post(f"/api/v1/inventory/{row.pk}/accept/").status_code == 404
    assert all(r["common_name"] != row.common_name
               for r in other.get("/api/v1/inventory/export/").json())


def test_an_endpoint_outside_the_policy_is_a_400_naming_it(api, settings):
    settings.OUTBOUND_ALLOW = []
    response = api.post("/api/v1/endpoints/", {"address": "127.0.0.1", "port": 443},
                        format="json")
    assert response.status_code == 400
    assert "127.0.0.1" in response.json()["errors"][0]["message"]
    assert not MonitoredEndpoint.objects.exists()


def test_an_endpoint_is_added_with_its_protocol_and_an_unknown_one_is_a_400(api):
    response = api.post("/api/v1/endpoints/", {"address": "127.0.0.1", "port": 143,
                                               "protocol": "imap"}, format="json")
    assert response.status_code == 201, response.json()
    assert response.json()["protocol"] == "imap"
    assert MonitoredEndpoint.objects.get().protocol == "imap"
    assert api.get("/api/v1/endpoints/").json()["results"][0]["protocol"] == "imap"
    response = api.post("/api/v1/endpoints/", {"address": "127.0.0.1", "port": 25,
                                               "protocol": "gopher"}, format="json")
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "protocol"
    assert MonitoredEndpoint.objects.count() == 1
    assert api.delete(f"/api/v1/endpoints/{MonitoredEndpoint.objects.get().pk}/"
                      ).status_code == 204
    assert list(AuditEvent.objects.order_by("pk").values_list("action", flat=True)) == [
        "endpoint_watched", "endpoint_stopped"]


def test_an_imported_certificate_is_adopted_once(api, world):
    key, leaf, ca = chain("adopt.example.test")
    api.post("/api/v1/inventory/import/", {
        "pem": pki.cert_pem(leaf) + pki.cert_pem(ca) + pki.key_pem(key)}, format="json")
    row = InventoryCertificate.objects.get()
    credential = factories.dns_credential(
        world["ca_account"].organization, kind=DNSKind.RFC2136, server="192.0.2.53",
        tsig_key_name="portal-key", zones=["example.test"],
        secret_values={"tsig_secret": "c2VjcmV0LXNlY3JldC1zZWNyZXQ="})
    response = api.post(f"/api/v1/inventory/{row.pk}/adopt/", {
        "ca_account": world["ca_account"].pk, "challenge": "dns-01",
        "dns_credentials": [credential.pk]}, format="json")
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["common_name"] == "adopt.example.test"
    row.refresh_from_db()
    certificate = row.adopted_as
    assert certificate.pk == body["id"]
    assert certificate.current_version.fingerprint_sha256 == row.fingerprint_sha256
    assert certificate.renew_after < certificate.expires_at
    again = api.post(f"/api/v1/inventory/{row.pk}/adopt/", {
        "ca_account": world["ca_account"].pk}, format="json")
    assert again.status_code == 409
