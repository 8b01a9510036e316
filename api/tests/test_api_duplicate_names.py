"""A second certificate for a name the organisation already has is refused over
the API too, unless it is marked separate."""

import pytest

from certificates.tests.factories import ca_account, certificate

pytestmark = pytest.mark.django_db

LOOKALIKE = "ＷＷＷ．msen。test"


@pytest.fixture
def existing(organization):
    return certificate(organization, ca_account(organization), common_name="www.msen.test",
                       sans=["www.msen.test"])


def test_the_api_refuses_a_lookalike_and_names_the_existing_certificate(owner, as_user,
                                                                        existing):
    api = as_user(owner)
    body = {"ca_account": existing.ca_account_id, "common_name": LOOKALIKE}
    response = api.post("/api/v1/certificates/", body, format="json")
    assert response.status_code == 400, response.content
    [error] = [e for e in response.json()["errors"] if e["field"] == "common_name"]
    assert f"id {existing.pk}" in error["message"]
    response = api.post("/api/v1/certificates/", {**body, "separate_certificate": True},
                        format="json")
    assert response.status_code == 201, response.content
    assert response.json()["separate_certificate"] is True
