"""Wrong passwords lock an account, and an address, out of the login for a
while: on the portal's login and on the Django admin's, which is the same form."""

import pytest
from django.conf import settings
from django.urls import reverse

from accounts.tests.factors import totp_code, totp_secret

pytestmark = pytest.mark.django_db

LOCKED = "Too many failed login attempts"


@pytest.fixture(autouse=True)
def _quick_password_hashes(settings):
    """Dozens of sign-ins per test: a fast hash keeps them to seconds. The
    lockout counts attempts, whatever the hash."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def attempt(client, username, password, address="192.0.2.10", path=None):
    return client.post(path or reverse("login"), {"login": username, "password": password},
                       REMOTE_ADDR=address, HTTP_ACCEPT_LANGUAGE="en")


def signed_in(client):
    return "_auth_user_id" in client.session


def test_the_nth_plus_one_wrong_password_locks_the_account_on_the_portal_login(client, operator):
    limit = settings.LOGIN_FAILURES_PER_ACCOUNT
    for _ in range(limit):
        response = attempt(client, "operator", "wrong")
        assert response.status_code == 200
        assert LOCKED not in response.content.decode()
    assert LOCKED in attempt(client, "operator", "wrong").content.decode()
    # The right password no longer helps, from this address or another.
    for address in ("192.0.2.10", "198.51.100.7"):
        response = attempt(client, "operator", "pw-operator", address=address)
        assert LOCKED in response.content.decode()
        assert not signed_in(client)


def test_a_locked_account_does_not_lock_out_another_one(client, operator, django_user_model):
    django_user_model.objects.create_user(username="colleague", password="pw-colleague")
    for _ in range(settings.LOGIN_FAILURES_PER_ACCOUNT + 1):
        attempt(client, "operator", "wrong")
    assert attempt(client, "colleague", "pw-colleague").status_code == 302
    assert signed_in(client)


def test_many_wrong_passwords_from_one_address_lock_that_address(client, django_user_model):
    django_user_model.objects.create_user(username="victim", password="pw-victim")
    for number in range(settings.LOGIN_FAILURES_PER_ADDRESS):
        # Never the same name twice: only the address is counted.
        attempt(client, f"guess-{number}", "wrong", address="203.0.113.5")
    assert LOCKED in attempt(client, "victim", "pw-victim", address="203.0.113.5"
                             ).content.decode()
    assert not signed_in(client)
    assert attempt(client, "victim", "pw-victim", address="198.51.100.8").status_code == 302


def test_the_admin_signs_in_through_the_portal_login(client):
    response = client.get(reverse("admin:login"))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login") + "?next=")
    form = client.get(response["Location"], HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert f'action="{reverse("login")}"' in form


def test_the_admin_login_form_takes_no_password_and_the_nth_plus_one_locks_it(
        client, admin_user):
    from accounts.tests.factors import give_totp

    give_totp(admin_user)
    admin_login = reverse("admin:login") + "?next=/admin/"
    # The admin's own form does not check passwords at all: 60 guesses, no sign-in.
    for _ in range(60):
        response = client.post(admin_login, {"username": "admin", "password": "wrong"})
        assert response.status_code == 302
        assert not signed_in(client)
    response = client.post(admin_login, {"username": "admin", "password": "password"})
    assert not signed_in(client)
    # Following it leads to the portal's form, where the lockout applies.
    next_url = response["Location"]
    for _ in range(settings.LOGIN_FAILURES_PER_ACCOUNT):
        attempt(client, "admin", "wrong", path=next_url)
    response = attempt(client, "admin", "password", path=next_url)
    assert LOCKED in response.content.decode()
    assert not signed_in(client)


def test_staff_reach_the_admin_after_password_and_code(client, admin_user):
    from accounts.tests.factors import give_totp

    give_totp(admin_user)
    response = attempt(client, "admin", "password",
                       path=reverse("login") + "?next=" + reverse("admin:index"))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("mfa_authenticate"))
    response = client.post(reverse("mfa_authenticate"),
                           {"code": totp_code(totp_secret(admin_user))})
    assert response["Location"] == reverse("admin:index")
    assert client.get(reverse("admin:index")).status_code == 200
