"""Bad input is a 400 in one shape that names the field and what is allowed; never a 500."""

import pytest

from certificates.models import TargetHost

pytestmark = pytest.mark.django_db


@pytest.fixture
def api(owner, as_user):
    return as_user(owner)


def errors_of(response):
    assert response.status_code == 400, response.content
    body = response.json()
    assert set(body) == {"errors"}
    for error in body["errors"]:
        assert set(error) == {"field", "message", "code"} and error["message"]
    return {e["field"]: e for e in body["errors"]}


def new_certificate(api, world, **fields):
    return api.post("/api/v1/certificates/", {
        "ca_account": world["ca_account"].pk, "common_name": "ok.example.test", **fields},
        format="json")


def test_a_bad_common_name_names_the_field(api, world):
    errors = errors_of(new_certificate(api, world, common_name="not a name!"))
    assert "common_name" in errors and errors["common_name"]["code"] != "invalid_choice"


def test_a_bad_choice_lists_what_is_allowed(api, world):
    error = errors_of(new_certificate(api, world, key_type="dsa-1024"))["key_type"]
    assert error["code"] == "invalid_choice"
    assert "ec-p256" in error["message"] and "rsa-4096" in error["message"]


def test_a_wildcard_needs_dns_01(api, world):
    errors = errors_of(new_certificate(api, world, common_name="*.example.test"))
    assert "challenge" in errors


def test_dns_01_needs_a_dns_credential(api, world):
    errors = errors_of(new_certificate(api, world, challenge="dns-01"))
    assert set(errors) == {"dns_credentials"}
    errors = errors_of(new_certificate(api, world, challenge="dns-01", dns_credentials=[99999]))
    assert "99999" in errors["dns_credentials"]["message"]


def test_a_bad_san_in_a_list_names_the_list(api, world):
    errors = errors_of(new_certificate(api, world, sans=["ok.example.test", "bad name"]))
    assert "sans" in errors


def test_a_missing_field_is_required(api, world):
    errors = errors_of(api.post("/api/v1/certificates/", {}, format="json"))
    assert errors["common_name"]["code"] == "required"


def test_a_malformed_body_is_a_400(api, world):
    response = api.generic("POST", "/api/v1/certificates/", "{not json",
                           content_type="application/json")
    assert errors_of(response)[None]["code"] == "parse_error"


def test_a_duplicate_host_name_is_a_400(api, world, tmp_path):
    from certificates.tests.pki import ssh_keypair

    login_key, _ = ssh_keypair(tmp_path, "dup")
    errors = errors_of(api.post("/api/v1/hosts/", {
        "name": world["host"].name, "address": "127.0.0.5", "ssh_user": "root",
        "login_key": login_key, "private_key_path": "/k", "certificate_path": "/c",
        "backup_dir": "/b"}, format="json"))
    assert errors
    assert TargetHost.objects.filter(name=world["host"].name).count() == 1


def test_a_relative_path_on_a_host_names_the_field(api, world):
    errors = errors_of(api.patch(f"/api/v1/hosts/{world['host'].pk}/",
                                 {"backup_dir": "relative/dir"}, format="json"))
    assert "backup_dir" in errors
    world["host"].refresh_from_db()
    assert world["host"].backup_dir == "/var/backups/certs"  # nothing stored is lost


def test_a_bad_filter_names_the_parameter(api, world):
    errors = errors_of(api.get("/api/v1/certificates/", {"expires_before": "soon"}))
    assert "expires_before" in errors
    errors = errors_of(api.get("/api/v1/runs/", {"status": "bogus"}))
    assert "succeeded" in errors["status"]["message"]


def test_a_page_past_the_end_is_a_404_in_the_same_shape(api, world):
    response = api.get("/api/v1/orders/", {"page": 99})
    assert response.status_code == 404
    assert response.json()["errors"][0]["code"] == "not_found"


def test_a_negative_top_up_is_refused(api, world):
    errors = errors_of(api.post(f"/api/v1/ca-accounts/{world['ca_account'].pk}/top-up/",
                                {"amount": "-5"}, format="json"))
    assert errors["amount"]["code"] == "min_value"


def test_a_yen_top_up_with_a_fraction_is_refused_naming_the_field(api, world):
    account = world["ca_account"]  # in JPY
    errors = errors_of(api.post(f"/api/v1/ca-accounts/{account.pk}/top-up/",
                                {"amount": "1100.50"}, format="json",
                                HTTP_ACCEPT_LANGUAGE="en"))
    assert errors["amount"]["message"] == (
        "amount: JPY has no minor unit; enter a whole number such as 1101.")
    assert account.balance() == 10000


def test_an_unsupported_method_is_a_405_in_the_same_shape(api, world):
    response = api.delete(f"/api/v1/orders/{world['order'].pk}/")
    assert response.status_code == 405
    assert response.json()["errors"][0]["code"] == "method_not_allowed"


def test_errors_translate_django_validation_and_integrity_errors():
    from django.core.exceptions import ValidationError
    from django.db import IntegrityError

    from api.errors import exception_handler

    response = exception_handler(ValidationError({"name": ValidationError("Bad.", code="x")}),
                                 {})
    assert response.status_code == 400
    assert response.data == {"errors": [{"field": "name", "message": "Bad.", "code": "x"}]}
    response = exception_handler(IntegrityError("duplicate key"), {})
    assert response.status_code == 400
    assert response.data["errors"][0]["field"] is None
