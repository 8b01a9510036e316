"""Bodies the API does not expect are refused in its error shape, naming what is
wrong: too deep, too large, or with keys it would not read."""

import json

import pytest

from api import serializers
from api.serializer_base import RefuseUnknownFieldsMixin
from certificates.models import Certificate

pytestmark = pytest.mark.django_db


@pytest.fixture
def api(owner, as_user):
    return as_user(owner)


def errors_of(response, status=400):
    assert response.status_code == status, response.content
    assert response["Content-Type"] == "application/json"
    body = response.json()
    assert set(body) == {"errors"}
    return {e["field"]: e for e in body["errors"]}


def nested(levels):
    return "[" * levels + "]" * levels


WRITE_ENDPOINTS = [
    ("post", "/api/v1/certificates/"),
    ("patch", "/api/v1/certificates/{certificate}/"),
    ("post", "/api/v1/certificates/{certificate}/deploy/"),
    ("post", "/api/v1/hosts/"),
    ("post", "/api/v1/hosts/{host}/confirm-host-key/"),
    ("post", "/api/v1/ca-accounts/{ca_account}/top-up/"),
    ("post", "/api/v1/webhooks/"),
]


def url_of(template, world):
    return template.format(**{k: getattr(v, "pk", None) for k, v in world.items()})


@pytest.mark.parametrize("method,template", WRITE_ENDPOINTS)
def test_a_body_nested_a_thousand_levels_is_a_400_on_every_write_endpoint(
        api, world, method, template, settings):
    settings.DEBUG = False
    body = '{"hosts": ' + nested(1000) + "}"
    response = getattr(api, method)(url_of(template, world), body,
                                    content_type="application/json")
    error = errors_of(response)[None]
    assert error["code"] == "too_deep" and "32" in error["message"]


def test_a_body_nested_within_the_bound_is_read(api, world):
    body = {"hosts": [world["host"].pk]}
    response = api.post(f"/api/v1/certificates/{world['certificate'].pk}/deploy/",
                        json.dumps(body), content_type="application/json")
    assert response.status_code == 202, response.content


def test_a_body_over_the_size_limit_is_a_413_in_the_api_shape(api, world, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    response = api.post("/api/v1/certificates/", json.dumps({"common_name": "a" * 2000}),
                        content_type="application/json")
    error = errors_of(response, status=413)[None]
    assert error["code"] == "too_large" and "1000 bytes" in error["message"]


def test_a_misspelt_field_is_refused_by_name_and_nothing_is_made(api, world):
    before = Certificate.objects.count()
    response = api.post("/api/v1/certificates/", {
        "ca_account": world["ca_account"].pk, "common_name": "new.example.test",
        "chalenge": "dns-01"}, format="json")
    error = errors_of(response)["chalenge"]
    assert error["code"] == "unknown_field"
    assert Certificate.objects.count() == before


def test_a_read_only_field_is_refused_by_name(api, world):
    response = api.patch(f"/api/v1/certificates/{world['certificate'].pk}/",
                         {"failure_count": 0, "auto_renew": False}, format="json")
    assert errors_of(response)["failure_count"]["code"] == "read_only"
    world["certificate"].refresh_from_db()
    assert world["certificate"].auto_renew is True


@pytest.mark.parametrize("method,template,field", [
    ("post", "/api/v1/certificates/{certificate}/deploy/", "host"),
    ("post", "/api/v1/hosts/{host}/confirm-host-key/", "fingerprints"),
    ("post", "/api/v1/ca-accounts/{ca_account}/top-up/", "ammount"),
    ("post", "/api/v1/webhooks/", "event"),
    ("patch", "/api/v1/hosts/{host}/", "adress"),
    ("post", "/api/v1/certificates/{certificate}/renew/", "forse"),
    ("post", "/api/v1/invitations/", "e_mail"),
])
def test_an_unknown_field_is_refused_on_every_write_endpoint(api, world, method, template,
                                                             field):
    response = getattr(api, method)(url_of(template, world), {field: "x"}, format="json")
    assert errors_of(response)[field]["code"] == "unknown_field"


def test_every_serializer_reading_a_body_refuses_unknown_keys():
    for serializer in serializers.WRITABLE_SERIALIZERS:
        assert issubclass(serializer, RefuseUnknownFieldsMixin), serializer
