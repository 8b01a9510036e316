"""Every page carries a Content-Security-Policy that allows no inline script or
style, and no page needs one: no <script> body, no style attribute, no <style>,
no event-handler attribute (the browser test shows the pages still work)."""

from html.parser import HTMLParser

import pytest
from django.urls import reverse

from accounts.tests.factors import reauthenticate

pytestmark = pytest.mark.django_db


class InlineFinder(HTMLParser):
    def __init__(self):
        super().__init__()
        self.found, self._script = [], None

    def handle_starttag(self, tag, attrs):
        names = dict(attrs)
        if tag == "style":
            self.found.append("<style>")
        if tag == "script" and "src" not in names:
            # A JSON data block is not run and needs no 'unsafe-inline'.
            self._script = None if names.get("type") == "application/json" else "<script>"
        for name, _value in attrs:
            if name == "style" or name.startswith("on"):
                self.found.append(f"<{tag} {name}=…>")

    def handle_data(self, data):
        if self._script and data.strip():
            self.found.append(f"{self._script} {data.strip()[:60]}")

    def handle_endtag(self, tag):
        if tag == "script":
            self._script = None


def inline_parts(html):
    finder = InlineFinder()
    finder.feed(html)
    return finder.found


def policy_of(response):
    policy = dict(part.strip().split(" ", 1) for part in
                  response["Content-Security-Policy"].split(";") if part.strip())
    return policy


PAGES = [
    ("certificates:dashboard", None), ("certificates:certificates", None),
    ("certificates:certificate", "certificate"), ("certificates:certificate_create", None),
    ("certificates:certificate_edit", "certificate"), ("certificates:hosts", None),
    ("certificates:host", "host"), ("certificates:host_create", None),
    ("certificates:host_edit", "host"), ("certificates:ca_accounts", None),
    ("certificates:ca_account", "ca_account"), ("certificates:ca_account_create", None),
    ("certificates:ca_account_edit", "ca_account"), ("certificates:orders", None),
    ("certificates:order", "order"), ("certificates:runs", None), ("certificates:run", "run"),
    ("certificates:members", None), ("password_change", None), ("api:tokens", None),
    ("certificates:audit", None),
    # Sign-in pages (django-allauth's views in the portal's templates).
    ("mfa_index", None), ("mfa_view_recovery_codes", None), ("mfa_list_webauthn", None),
    ("mfa_add_webauthn", None), ("account_reauthenticate", None),
]


@pytest.mark.parametrize("name,obj", PAGES, ids=[name for name, _ in PAGES])
def test_every_page_has_a_strict_policy_and_no_inline_script_or_style(client, owner, world,
                                                                      name, obj):
    client.force_login(owner)
    reauthenticate(client, owner)  # some sign-in pages ask for the password first
    response = client.get(reverse(name, args=[world[obj].pk] if obj else []))
    assert response.status_code == 200
    policy = policy_of(response)
    assert policy["default-src"] == "'self'"
    assert "unsafe-inline" not in policy["script-src"] + policy["style-src"]
    assert inline_parts(response.content.decode()) == []


@pytest.mark.parametrize("name", ["login", "account_reset_password", "certificates:certificate"])
def test_pages_for_a_stranger_have_the_policy_too(client, world, name):
    if name != "certificates:certificate":
        response = client.get(reverse(name))
    else:  # a 404 for someone signed in elsewhere, a redirect to sign in otherwise
        response = client.get(reverse(name, args=[world["certificate"].pk]))
    assert "Content-Security-Policy" in response
    if response.status_code == 200:
        assert inline_parts(response.content.decode()) == []


def test_the_api_documentation_page_needs_no_inline_script_or_style(client, owner):
    client.force_login(owner)
    response = client.get(reverse("api:docs"))
    assert response.status_code == 200
    assert "unsafe-inline" not in response["Content-Security-Policy"]
    assert inline_parts(response.content.decode()) == []
    script = client.get(reverse("api:docs") + "?script=")
    assert script.status_code == 200
    assert script["Content-Type"].startswith("application/javascript")
