"""Signing in with a second factor, in Debian's Chromium against the live server
(the set-up of certificates/tests/browser.py)."""

import pytest
from allauth.mfa.models import Authenticator

from accounts.models import Membership, Role
from accounts.tests.factors import totp_code, totp_secret
from certificates.tests.browser import password_step, shoot

pytestmark = pytest.mark.django_db(transaction=True)


def test_an_owner_signs_in_with_password_and_authenticator_code(open_page, owner):
    page = open_page()
    password_step(page, "owner")
    # The password alone is not enough: the second step asks for the app's code.
    assert "/accounts/2fa/authenticate/" in page.url
    page.goto("/certificates/")
    assert "/accounts/" in page.url and not page.locator("nav.mainnav").count()
    page.goto("/accounts/2fa/authenticate/")
    shoot(page, "signin-code")
    page.fill("#id_code", "000000" if totp_code(totp_secret(owner)) != "000000" else "111111")
    with page.expect_navigation():
        page.click("main form:has(#id_code) button[type=submit]")
    assert "/accounts/2fa/authenticate/" in page.url
    assert page.locator(".field-errors, .banner.bad").count() > 0
    page.fill("#id_code", totp_code(totp_secret(owner)))
    with page.expect_navigation():
        page.click("main form:has(#id_code) button[type=submit]")
    assert page.url.endswith("/")
    assert page.locator("nav.mainnav").is_visible()


def test_an_owner_without_a_factor_must_set_up_totp_before_anything_else(
        open_page, organization, django_user_model):
    person = django_user_model.objects.create_user(username="newowner", password="pw-newowner")
    Membership.objects.create(user=person, organization=organization, role=Role.OWNER)
    page = open_page(locale="ja-JP")
    password_step(page, "newowner")
    assert "/accounts/2fa/" in page.url
    assert "二要素認証（認証アプリまたはパスキー）を設定してください" in page.text_content("main")
    page.goto("/certificates/")
    assert "/accounts/2fa/" in page.url
    shoot(page, "mfa-required-ja")
    with page.expect_navigation():
        page.click("a[href^='/accounts/2fa/totp/activate']")
    # Adding a factor asks for the password again.
    assert "/accounts/reauthenticate/" in page.url
    shoot(page, "reauthenticate-ja")
    page.fill("#id_password", "pw-newowner")
    with page.expect_navigation():
        page.click("main form button[type=submit]")
    assert "/accounts/2fa/totp/activate" in page.url
    secret = page.input_value("#authenticator_secret")
    shoot(page, "totp-activate-ja")
    page.fill("#id_code", totp_code(secret))
    with page.expect_navigation():
        page.click("main form button[type=submit]")
    assert Authenticator.objects.filter(user=person, type="totp").exists()
    # Recovery codes come with it; then the portal opens.
    assert Authenticator.objects.filter(user=person, type="recovery_codes").exists()
    shoot(page, "recovery-codes-ja")
    page.goto("/certificates/")
    assert page.url.endswith("/certificates/")


def test_the_password_reset_page_speaks_japanese(open_page):
    page = open_page(locale="ja-JP")
    page.goto("/accounts/login/")
    with page.expect_navigation():
        page.click("a[href='/accounts/password/reset/']")
    assert "パスワード" in page.text_content("h1")
    shoot(page, "password-reset-ja")
