"""What frames every page: the person's organisation, language and time zone, and
their password.
"""

import datetime

import pytest
from django.urls import reverse

from accounts.models import Membership, Organization, Role
from certificates.models import RenewalRun
from certificates.tests.factories import ca_account
from certificates.tests.pages import page

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def english(client):
    """Messages are asserted in English; the Japanese pages are the browser test's."""
    client.defaults["HTTP_ACCEPT_LANGUAGE"] = "en"


# -- context: organisations, language, time zone -----------------------------------


def test_a_person_in_two_organisations_switches_between_them(client, world, owner,
                                                             other_organization):
    Membership.objects.create(user=owner, organization=other_organization, role=Role.VIEWER)
    elsewhere = ca_account(other_organization, name="Elsewhere CA")
    client.force_login(owner)
    html = page(client, "certificates:ca_accounts")
    assert 'id="org-switch"' in html
    client.post(reverse("certificates:switch_organization"),
                {"organization": other_organization.pk})
    html = page(client, "certificates:ca_accounts")
    assert elsewhere.name in html and world["ca_account"].name not in html
    # The viewer role there: no actions, although an owner at home.
    assert "Add a certificate" not in page(client, "certificates:certificates")


def test_switching_to_an_organisation_one_is_not_in_is_404(client, owner):
    stranger = Organization.objects.create(name="Stranger", slug="stranger")
    client.force_login(owner)
    response = client.post(reverse("certificates:switch_organization"),
                           {"organization": stranger.pk})
    assert response.status_code == 404


def test_the_language_switch_is_remembered_for_the_person(client, owner):
    client.force_login(owner)
    client.post(reverse("certificates:set_language"), {"language": "en", "next": "/"})
    owner.refresh_from_db()
    assert owner.language == "en"
    assert "Dashboard" in page(client, "certificates:dashboard")
    client.post(reverse("certificates:set_language"), {"language": "ja", "next": "/"})
    assert 'lang="ja"' in page(client, "certificates:dashboard")


def test_times_are_shown_in_the_organisations_time_zone(client, world, owner):
    organization = world["certificate"].organization
    run = world["run"]
    RenewalRun.objects.filter(pk=run.pk).update(
        created_at=datetime.datetime(2026, 1, 2, 23, 30, tzinfo=datetime.UTC))
    client.force_login(owner)
    owner.language = "en"
    owner.save()
    organization.time_zone = "Asia/Tokyo"
    organization.save()
    assert "3 Jan 2026, 08:30" in page(client, "certificates:run", run.pk)
    organization.time_zone = "America/New_York"
    organization.save()
    assert "2 Jan 2026, 18:30" in page(client, "certificates:run", run.pk)


def test_the_password_can_be_changed(client, owner):
    client.force_login(owner)
    response = client.post(reverse("password_change"), {
        "old_password": "pw-owner", "new_password1": "a-Much-longer-pass-9",
        "new_password2": "a-Much-longer-pass-9"})
    assert response.status_code == 302
    owner.refresh_from_db()
    assert owner.check_password("a-Much-longer-pass-9")


@pytest.mark.parametrize("language,words", [("en", ["Private key", "Served certificate check"]),
                                            ("ja", ["秘密鍵", "配信中の証明書の確認"])])
def test_run_steps_are_named_in_words_of_the_readers_language(client, owner, world, language,
                                                               words):
    run = world["run"]
    run.step("key", "done")
    run.step("tls_check", "failed", "not served")
    client.force_login(owner)
    client.defaults["HTTP_ACCEPT_LANGUAGE"] = language
    html = page(client, "certificates:run", run.pk)
    for word in words:
        assert f'<span class="step-name">{word}</span>' in html
    steps = client.get(reverse("certificates:run_steps", args=[run.pk])).json()["steps"]
    assert [step["label"] for step in steps][-2:] == words
