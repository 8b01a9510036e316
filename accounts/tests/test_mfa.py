"""Two-factor authentication: who must have it, that they reach nothing without
it, that setting it up works, and that changes to it are audited."""

import re

import pytest
from allauth.mfa.models import Authenticator
from django.urls import URLPattern, URLResolver, get_resolver, reverse

from accounts.middleware import MFA_SETUP_URL_NAMES
from accounts.models import Membership, Role
from accounts.tests.factors import reauthenticate, totp_code
from api.models import APIToken, Scope

pytestmark = pytest.mark.django_db


@pytest.fixture
def bare_owner(django_user_model, organization):
    """An owner who has not set up a second factor yet."""
    user = django_user_model.objects.create_user(username="newowner", password="pw-newowner")
    Membership.objects.create(user=user, organization=organization, role=Role.OWNER)
    return user


def _sample(pattern: str) -> str:
    """A concrete path for a URL pattern: every parameter filled with something."""
    pattern = re.sub(r"\(\?:[^)]*\)\)?\?", "", pattern)  # optional suffixes (".json")
    pattern = re.sub(r"\(\?P<[^>]+>[^)]*\)", "1", pattern)
    pattern = re.sub(r"<int:[^>]+>", "1", pattern)
    pattern = re.sub(r"<[^>]+>", "x", pattern)
    pattern = pattern.replace("^", "").replace("$", "").replace("\\Z", "").replace("\\", "")
    return "/" + pattern


def every_named_url():
    """(namespaced name, path) for every named pattern of the portal, the admin's,
    the API's and allauth's included."""
    found = []

    def walk(patterns, prefix, namespace):
        for entry in patterns:
            route = prefix + str(entry.pattern)
            if isinstance(entry, URLResolver):
                walk(entry.url_patterns, route,
                     ":".join(filter(None, [namespace, entry.namespace])))
            elif isinstance(entry, URLPattern) and entry.name:
                found.append((":".join(filter(None, [namespace, entry.name])), _sample(route)))

    walk(get_resolver().url_patterns, "", "")
    return found


def test_a_required_mfa_owner_without_a_factor_reaches_no_page_but_its_set_up(client, bare_owner):
    client.force_login(bare_owner)
    urls = every_named_url()
    assert len(urls) > 100  # the admin's, the API's, allauth's and the portal's
    setup = reverse("mfa_index")
    reached = []
    for name, path in urls:
        short = name.rpartition(":")[2]
        if short.startswith("mfa_") or short in MFA_SETUP_URL_NAMES:
            continue
        response = client.get(path)
        if path.startswith("/api/") and short not in ("tokens", "revoke-token", "docs"):
            refused = response.status_code == 403
        elif path.startswith("/agent/"):
            # The agents' protocol reads no session (AgentEndpoints): a person's
            # session opens nothing there, with or without a factor.
            refused = response.status_code >= 400
        else:
            refused = (response.status_code == 302
                       and response["Location"].startswith(setup + "?next="))
        if not refused:
            reached.append((name, path, response.status_code))
    assert reached == []
    # ...and a write through the API by session is refused as well.
    assert client.post("/api/v1/certificates/", {}, content_type="application/json"
                       ).status_code == 403


def test_the_set_up_pages_stay_reachable_for_a_person_who_must_set_up(client, bare_owner):
    client.force_login(bare_owner)
    assert client.get(reverse("mfa_index")).status_code == 200
    assert client.get(reverse("account_reauthenticate")).status_code == 200


def test_an_owner_with_a_factor_reaches_the_pages(client, owner):
    client.force_login(owner)
    assert client.get(reverse("certificates:dashboard")).status_code == 200
    assert client.get("/api/v1/certificates/").status_code == 200


def test_an_operator_needs_a_factor_only_where_the_organisation_requires_it(
        client, operator, organization):
    client.force_login(operator)
    assert client.get(reverse("certificates:dashboard")).status_code == 200
    organization.require_mfa = True
    organization.save()
    response = client.get(reverse("certificates:dashboard"))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("mfa_index"))


def test_staff_must_have_a_factor_for_the_admin(client, admin_user):
    client.force_login(admin_user)
    response = client.get(reverse("admin:index"))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("mfa_index"))


def test_a_bearer_token_is_a_credential_of_its_own(client, bare_owner):
    """A token is made on the token page, which needs the factor; one made before
    the rule came keeps working until it expires or is revoked."""
    from datetime import timedelta

    from django.utils import timezone

    _token, raw = APIToken.issue(user=bare_owner, name="sync", scopes=[Scope.READ],
                                 expires_at=timezone.now() + timedelta(days=1))
    response = client.get("/api/v1/certificates/", HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert response.status_code == 200


def test_an_owner_sets_up_totp_and_then_reaches_the_pages_and_it_is_audited(
        client, bare_owner, organization, django_capture_on_commit_callbacks):
    from certificates.models import AuditEvent

    client.force_login(bare_owner)
    reauthenticate(client, bare_owner)
    page = client.get(reverse("mfa_activate_totp"))
    assert page.status_code == 200
    secret = client.session["mfa.totp.secret"]
    assert secret in page.content.decode()  # shown for apps that cannot scan
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("mfa_activate_totp"), {"code": totp_code(secret)})
    assert response.status_code == 302, response.content.decode()
    assert Authenticator.objects.filter(user=bare_owner, type="totp").exists()
    assert client.get(reverse("certificates:dashboard")).status_code == 200
    event = AuditEvent.objects.get(action=AuditEvent.Action.MFA_CHANGED, params__type="totp")
    assert (event.organization, event.user, event.params) == (
        organization, bare_owner, {"type": "totp", "change": "added"})


def test_the_totp_secret_is_encrypted_at_rest(owner):
    from accounts.tests.factors import totp_secret

    stored = Authenticator.objects.get(user=owner, type="totp").data["secret"]
    assert totp_secret(owner) not in stored


def test_an_administrator_requires_mfa_of_every_member_and_it_is_audited(
        client, owner, organization):
    from certificates.models import AuditEvent

    client.force_login(owner)
    assert 'name="require_mfa"' in client.get(reverse("certificates:members")).content.decode()
    client.post(reverse("certificates:member_require_mfa"), {"require_mfa": "on"})
    organization.refresh_from_db()
    assert organization.require_mfa is True
    assert AuditEvent.objects.get(action=AuditEvent.Action.MFA_CHANGED).params == {
        "require_mfa": True}


def test_an_operator_may_not_change_the_mfa_rule(client, operator, organization):
    client.force_login(operator)
    assert client.post(reverse("certificates:member_require_mfa"),
                       {"require_mfa": "on"}).status_code == 403
    organization.refresh_from_db()
    assert organization.require_mfa is False


def test_an_owner_cannot_deactivate_their_only_factor(client, owner):
    client.force_login(owner)
    reauthenticate(client, owner)
    response = client.post(reverse("mfa_deactivate_totp"), HTTP_ACCEPT_LANGUAGE="en")
    assert response.status_code == 200
    assert Authenticator.objects.filter(user=owner, type="totp").exists()


def test_an_operator_may_deactivate_theirs_where_it_is_not_required(client, operator):
    from accounts.tests.factors import give_totp

    give_totp(operator)
    client.force_login(operator)
    reauthenticate(client, operator)
    response = client.post(reverse("mfa_deactivate_totp"))
    assert response.status_code == 302
    assert not Authenticator.objects.filter(user=operator, type="totp").exists()


def test_the_security_key_page_is_there_for_passkeys(client, bare_owner):
    client.force_login(bare_owner)
    reauthenticate(client, bare_owner)
    page = client.get(reverse("mfa_add_webauthn"))
    assert page.status_code == 200
    html = page.content.decode()
    assert 'src="/static/mfa/js/webauthn.js"' in html
    # The page's data rides in JSON blocks, not in inline code.
    assert not re.search(r"<script(?![^>]*(src=|type=\"application/json\"))[^>]*>", html)


def test_rotating_the_keys_re_encrypts_the_totp_secrets(owner, settings):
    import io

    from cryptography.fernet import Fernet
    from django.core.management import call_command

    from accounts.tests.factors import totp_secret

    secret = totp_secret(owner)
    new_key = Fernet.generate_key().decode()
    settings.FIELD_ENCRYPTION_KEYS = [new_key, *settings.FIELD_ENCRYPTION_KEYS]
    call_command("rotate_secrets", stdout=io.StringIO())
    settings.FIELD_ENCRYPTION_KEYS = [new_key]  # the old key is gone now
    assert totp_secret(owner) == secret
