"""CA accounts added and changed through the API with the page form's checks,
against a real Pebble: the directory fetched and checked to be ACME, an EAB key
checked by registering, the problem named under its setting; administrators
only, audited, the EAB HMAC key never answered."""

import base64

import pytest
from rest_framework.test import APIClient

from certificates.models import AuditEvent, CAAccount
from certificates.tests.factories import ca_account

pytestmark = pytest.mark.django_db

HMAC = base64.urlsafe_b64encode(b"h" * 32).decode().rstrip("=")
WRONG_HMAC = base64.urlsafe_b64encode(b"w" * 32).decode().rstrip("=")


@pytest.fixture
def trusted(settings, pebble):
    settings.ACME_CA_BUNDLE = str(pebble.ca_bundle)


@pytest.fixture
def strict(pebble_factory, trusted):
    """A Pebble that requires External Account Binding with key ID kid-1."""
    return pebble_factory(eab_keys={"kid-1": HMAC}, nonce_reject=None)


def api_of(user):
    api = APIClient(HTTP_ACCEPT_LANGUAGE="en")
    api.force_authenticate(user)
    return api


def errors_of(response, field):
    """The messages the API's error body gives for `field`."""
    return " ".join(e["message"] for e in response.data["errors"] if e["field"] == field)


def body(directory_url, **changes):
    return {"name": "API CA", "directory_url": directory_url,
            "contact_email": "ops@example.test", "price": "1100", "currency": "JPY",
            "low_balance_threshold": "3300", **changes}


def test_an_administrator_adds_a_ca_account_the_ca_accepts(admin, organization, pebble,
                                                           trusted):
    response = api_of(admin).post("/api/v1/ca-accounts/", body(pebble.directory_url),
                                  format="json")

    assert response.status_code == 201, response.data
    account = CAAccount.objects.get(name="API CA")
    assert account.organization == organization
    assert response.data["balance"] == "0.00"
    event = AuditEvent.objects.get(action=AuditEvent.Action.CA_ACCOUNT_CREATED)
    assert event.user == admin and event.params["via"] == "api"


def test_a_wrong_directory_url_is_refused_with_its_reason(admin, pebble, trusted):
    typo = pebble.directory_url.removesuffix("/dir") + "/directory"

    response = api_of(admin).post("/api/v1/ca-accounts/", body(typo), format="json")

    assert response.status_code == 400
    error = errors_of(response, "directory_url")
    assert "directory could not be fetched" in error and "HTTP 404" in error
    assert not CAAccount.objects.exists()


def test_a_right_eab_key_registers_and_is_never_answered(admin, strict):
    response = api_of(admin).post("/api/v1/ca-accounts/", body(
        strict.directory_url, eab_kid="kid-1", eab_hmac_key=HMAC), format="json")

    assert response.status_code == 201, response.data
    assert "eab_hmac_key" not in response.data and HMAC not in response.content.decode()
    account = CAAccount.objects.get(name="API CA")
    assert account.eab_hmac_key == HMAC
    assert account.account_url.startswith("https://") and account.account_key
    assert response.data["account_url"] == account.account_url


def test_a_wrong_eab_hmac_key_is_refused_as_the_external_account_binding(admin, strict):
    response = api_of(admin).post("/api/v1/ca-accounts/", body(
        strict.directory_url, eab_kid="kid-1", eab_hmac_key=WRONG_HMAC), format="json")

    assert response.status_code == 400
    error = errors_of(response, "eab_hmac_key")
    assert "refused the External Account Binding" in error and "challenge" not in error
    assert not CAAccount.objects.exists()


def test_a_ca_that_requires_eab_says_so_when_none_is_given(admin, strict):
    response = api_of(admin).post("/api/v1/ca-accounts/", body(strict.directory_url),
                                  format="json")

    assert response.status_code == 400
    assert "requires External Account Binding" in errors_of(response, "eab_kid")


def test_a_change_of_price_asks_no_ca_and_is_audited(admin, organization):
    # Nothing listens at this directory: a check would fail.
    account = ca_account(organization, directory_url="https://127.0.0.1:9/dir")

    response = api_of(admin).patch(f"/api/v1/ca-accounts/{account.pk}/",
                                   {"price": "990"}, format="json")

    assert response.status_code == 200, response.data
    account.refresh_from_db()
    assert str(account.price) == "990.00"
    event = AuditEvent.objects.get(action=AuditEvent.Action.CA_ACCOUNT_CHANGED)
    assert event.params["fields"] == ["price"]


def test_a_changed_directory_is_checked_and_nothing_is_saved_when_refused(
        admin, organization, pebble, trusted):
    account = ca_account(organization, directory_url=pebble.directory_url, name="Kept")

    response = api_of(admin).patch(f"/api/v1/ca-accounts/{account.pk}/", {
        "directory_url": pebble.directory_url + "x", "name": "Renamed"}, format="json")

    assert response.status_code == 400 and "HTTP 404" in errors_of(response, "directory_url")
    account.refresh_from_db()
    assert (account.name, account.directory_url) == ("Kept", pebble.directory_url)
    assert not AuditEvent.objects.filter(action=AuditEvent.Action.CA_ACCOUNT_CHANGED).exists()


def test_a_fraction_of_a_yen_is_refused_by_its_field(admin, organization):
    account = ca_account(organization)

    response = api_of(admin).patch(f"/api/v1/ca-accounts/{account.pk}/",
                                   {"price": "1100.50"}, format="json")

    assert response.status_code == 400 and "minor unit" in errors_of(response, "price")


def test_operators_may_not_add_or_change_ca_accounts(operator, organization, pebble):
    account = ca_account(organization)
    api = api_of(operator)

    assert api.post("/api/v1/ca-accounts/", body(pebble.directory_url),
                    format="json").status_code == 403
    assert api.patch(f"/api/v1/ca-accounts/{account.pk}/", {"price": "1"},
                     format="json").status_code == 403


def test_another_organisations_ca_account_is_not_found(outsider, organization):
    account = ca_account(organization)

    response = api_of(outsider).patch(f"/api/v1/ca-accounts/{account.pk}/", {"price": "1"},
                                      format="json")

    assert response.status_code == 404
    account.refresh_from_db()
    assert str(account.price) == "1100.00"
