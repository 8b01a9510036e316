"""What a signed-in person is shown is kept by no cache, page or API answer."""

import pytest
from django.urls import reverse

from api.tests.conftest import client_for, make_token

pytestmark = pytest.mark.django_db


def assert_no_store(response):
    assert "no-store" in response["Cache-Control"], response.get("Cache-Control")
    assert "private" in response["Cache-Control"]


def test_a_page_for_a_signed_in_person_is_not_stored(client, owner):
    client.force_login(owner)
    response = client.get(reverse("certificates:certificates"))
    assert response.status_code == 200
    assert_no_store(response)


def test_an_api_answer_to_a_token_is_not_stored(owner):
    response = client_for(make_token(owner)[1]).get("/api/v1/certificates/")
    assert response.status_code == 200
    assert_no_store(response)


def test_an_api_refusal_to_a_bad_token_is_not_stored_either(db):
    response = client_for("not-a-token").get("/api/v1/certificates/")
    assert response.status_code == 401
    assert_no_store(response)

