"""A CA account's settings checked with the CA when they are saved and on
request (the page's "Test" button, the API's test action), against a real
Pebble; and a person's fix of a permanent failure retried at once."""

import base64
import datetime

import pytest
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from certificates.models import CAAccount, Certificate
from certificates.seams.acme_problems import describe_problem
from certificates.tests.factories import ca_account, certificate, one_of_everything

pytestmark = pytest.mark.django_db

HMAC = base64.urlsafe_b64encode(b"h" * 32).decode().rstrip("=")
WRONG_HMAC = base64.urlsafe_b64encode(b"w" * 32).decode().rstrip("=")


@pytest.fixture(autouse=True)
def english(client):
    client.defaults["HTTP_ACCEPT_LANGUAGE"] = "en"


@pytest.fixture
def trusted(settings, pebble):
    settings.ACME_CA_BUNDLE = str(pebble.ca_bundle)


@pytest.fixture
def strict(pebble_factory, trusted):
    """A Pebble that requires External Account Binding with key ID kid-1."""
    return pebble_factory(eab_keys={"kid-1": HMAC}, nonce_reject=None)


def fields(directory_url, **changes):
    return {"name": "Checked CA", "directory_url": directory_url,
            "contact_email": "ops@example.test", "eab_kid": "", "eab_hmac_key": "",
            "price": "1100", "currency": "JPY", "low_balance_threshold": "0", **changes}


def test_a_wrong_directory_url_is_refused_with_its_reason(client, admin, pebble, trusted):
    client.force_login(admin)
    typo = pebble.directory_url.removesuffix("/dir") + "/directory"

    response = client.post(reverse("certificates:ca_account_create"), fields(typo))

    assert response.status_code == 200
    error = response.context["form"].errors["directory_url"][0]
    assert "directory could not be fetched" in error and "HTTP 404" in error
    assert not CAAccount.objects.filter(name="Checked CA").exists()


def test_a_right_directory_url_is_accepted(client, admin, pebble, trusted):
    client.force_login(admin)

    response = client.post(reverse("certificates:ca_account_create"),
                           fields(pebble.directory_url))

    assert response.status_code == 302, response.context["form"].errors
    # Without EAB nothing is registered yet: the first renewal does that.
    assert CAAccount.objects.get(name="Checked CA").account_url == ""


def test_a_ca_that_requires_eab_says_so_when_none_is_given(client, admin, strict):
    client.force_login(admin)

    response = client.post(reverse("certificates:ca_account_create"),
                           fields(strict.directory_url))

    assert "requires External Account Binding" in (
        response.context["form"].errors["eab_kid"][0])


def test_a_wrong_eab_hmac_key_is_refused_in_words_that_say_so(client, admin, strict):
    client.force_login(admin)

    response = client.post(reverse("certificates:ca_account_create"), fields(
        strict.directory_url, eab_kid="kid-1", eab_hmac_key=WRONG_HMAC))

    assert response.status_code == 200
    error = response.context["form"].errors["eab_hmac_key"][0]
    assert "refused the External Account Binding" in error
    assert "challenge" not in error
    assert not CAAccount.objects.filter(name="Checked CA").exists()


def test_a_right_eab_key_registers_the_account_on_save(client, admin, strict):
    client.force_login(admin)

    response = client.post(reverse("certificates:ca_account_create"), fields(
        strict.directory_url, eab_kid="kid-1", eab_hmac_key=HMAC))

    assert response.status_code == 302, response.context["form"].errors
    account = CAAccount.objects.get(name="Checked CA")
    assert account.account_url.startswith("https://") and account.account_key


def test_the_test_button_shows_what_the_ca_said(client, admin, organization, pebble,
                                                trusted):
    account = ca_account(organization, directory_url=pebble.directory_url + "x")
    client.force_login(admin)

    response = client.post(reverse("certificates:ca_account_test", args=[account.pk]),
                           follow=True)

    assert "HTTP 404" in response.content.decode()


def test_the_api_test_action(admin, organization, strict):
    good = ca_account(organization, directory_url=strict.directory_url, eab_kid="kid-1",
                      eab_hmac_key=HMAC)
    bad = ca_account(organization, name="Bad", directory_url=strict.directory_url,
                     eab_kid="kid-1", eab_hmac_key=WRONG_HMAC)
    api = APIClient(HTTP_ACCEPT_LANGUAGE="en")
    api.force_authenticate(admin)

    ok = api.post(f"/api/v1/ca-accounts/{good.pk}/test/")
    refused = api.post(f"/api/v1/ca-accounts/{bad.pk}/test/")

    assert ok.status_code == 200 and ok.data == {"ok": True, "problems": []}
    good.refresh_from_db()
    assert good.account_url
    assert refused.data["ok"] is False
    assert refused.data["problems"][0]["field"] == "eab_hmac_key"


def test_the_api_test_action_is_for_administrators(operator, organization, pebble):
    account = ca_account(organization, directory_url=pebble.directory_url)
    api = APIClient(HTTP_ACCEPT_LANGUAGE="en")
    api.force_authenticate(operator)

    assert api.post(f"/api/v1/ca-accounts/{account.pk}/test/").status_code == 403


def test_fixing_the_ca_account_retries_its_failing_certificates_at_once(
        client, admin, organization, pebble, trusted):
    later = timezone.now() + datetime.timedelta(hours=24)
    account = ca_account(organization, directory_url=pebble.directory_url + "ectory")
    failing = certificate(organization, account, failure_count=1, next_attempt_at=later)
    held = certificate(organization, account, common_name="held.example.test",
                       sans=["held.example.test"], failure_count=1, next_attempt_at=later,
                       held_for_deposit=True)
    client.force_login(admin)

    response = client.post(reverse("certificates:ca_account_edit", args=[account.pk]),
                           fields(pebble.directory_url, name=account.name))

    assert response.status_code == 302, response.context["form"].errors
    assert Certificate.objects.get(pk=failing.pk).next_attempt_at <= timezone.now()
    assert Certificate.objects.get(pk=held.pk).next_attempt_at == later


def test_a_refused_eab_is_said_as_such_and_a_failed_challenge_still_as_one():
    eab = describe_problem({"type": "urn:ietf:params:acme:error:unauthorized",
                            "detail": "external account binding JWS verification error"})
    challenge = describe_problem({"type": "urn:ietf:params:acme:error:unauthorized",
                                  "detail": "Invalid response from http://a.test/"})

    assert eab.startswith("The CA refused the External Account Binding")
    assert eab.endswith("external account binding JWS verification error")
    assert "challenge response was missing or wrong" in challenge


def test_changing_a_certificate_or_a_host_in_the_api_retries_its_certificate(
        owner, organization, tmp_path):
    world = one_of_everything(organization, tmp_path)
    cert, host = world["certificate"], world["host"]
    later = timezone.now() + datetime.timedelta(hours=24)
    api = APIClient(HTTP_ACCEPT_LANGUAGE="en")
    api.force_authenticate(owner)

    for path, change in ((f"/api/v1/certificates/{cert.pk}/", {"auto_renew": True}),
                         (f"/api/v1/hosts/{host.pk}/", {"name": "web1-renamed"})):
        Certificate.objects.filter(pk=cert.pk).update(failure_count=2, next_attempt_at=later)
        response = api.patch(path, change, format="json")
        assert response.status_code == 200, response.data
        assert Certificate.objects.get(pk=cert.pk).next_attempt_at <= timezone.now(), path
