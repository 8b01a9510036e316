"""A second certificate for a common name the organisation already has (after
normalisation) is refused, naming the existing one, unless it is marked as a
separate certificate on purpose."""

import pytest
from django.urls import reverse

from certificates.models import Certificate
from certificates.tests.factories import ca_account, certificate

pytestmark = pytest.mark.django_db

LOOKALIKE = "ＷＷＷ．msen。test"  # full-width letters and dots, an ideographic full stop


@pytest.fixture
def existing(organization):
    return certificate(organization, ca_account(organization), common_name="www.msen.test",
                       sans=["www.msen.test"])


def form_data(existing, **fields):
    # These names are in no DNS: the person confirms past the page's warnings.
    return {"common_name": LOOKALIKE, "ca_account": existing.ca_account_id,
            "key_type": "rsa-2048", "challenge": "http-01", "dns_port": 53,
            "tsig_algorithm": "hmac-sha256", "acknowledge_warnings": "1", **fields}


def test_the_form_refuses_a_lookalike_of_an_existing_common_name(client, owner, existing):
    client.defaults["HTTP_ACCEPT_LANGUAGE"] = "en"
    client.force_login(owner)
    response = client.post(reverse("certificates:certificate_create"), form_data(existing))
    assert response.status_code == 200
    error = " ".join(response.context["form"].errors["common_name"])
    assert "already has a certificate for www.msen.test" in error
    assert f"id {existing.pk}" in error
    assert Certificate.objects.count() == 1


def test_the_form_keeps_a_second_certificate_marked_separate(client, owner, existing):
    client.force_login(owner)
    response = client.post(reverse("certificates:certificate_create"),
                           form_data(existing, separate_certificate="on"))
    assert response.status_code == 302
    second = Certificate.objects.exclude(pk=existing.pk).get()
    assert second.common_name == "www.msen.test" and second.separate_certificate


def test_editing_a_certificate_does_not_count_itself(client, owner, existing):
    client.force_login(owner)
    response = client.post(reverse("certificates:certificate_edit", args=[existing.pk]),
                           form_data(existing, common_name="WWW.msen.test"))
    assert response.status_code == 302


def test_another_organisation_may_have_the_same_name(other_organization, existing):
    ca = ca_account(other_organization)
    other = Certificate(organization=other_organization, ca_account=ca, common_name=LOOKALIKE)
    other.full_clean()
    assert other.common_name == "www.msen.test"
