"""The portal speaks Japanese and English: pages, and validation messages."""

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse
from django.utils import translation

from certificates.validators import validate_port

pytestmark = pytest.mark.django_db


def test_the_login_page_is_japanese_by_default_and_english_on_request(client, settings):
    settings.LANGUAGE_CODE = "ja"  # the production default (the suite runs in English)
    assert "ログイン" in client.get(reverse("login")).content.decode()
    english = client.get(reverse("login"), HTTP_ACCEPT_LANGUAGE="en")
    assert "Log in" in english.content.decode()


def test_a_persons_preferred_language_wins_over_the_browser(client, owner):
    owner.language = "en"
    owner.save()
    client.force_login(owner)
    page = client.get(reverse("certificates:dashboard"), HTTP_ACCEPT_LANGUAGE="ja")
    assert "Certificates" in page.content.decode()
    owner.language = "ja"
    owner.save()
    page = client.get(reverse("certificates:dashboard"), HTTP_ACCEPT_LANGUAGE="en")
    assert "証明書" in page.content.decode()


def test_the_language_switch_is_remembered(client):
    client.post(reverse("set_language"), {"language": "en", "next": "/"})
    assert "Log in" in client.get(reverse("login")).content.decode()


@pytest.mark.parametrize("language,expected", [("ja", "65535 までの整数"), ("en", "1 to 65535")])
def test_validation_messages_are_translated(language, expected):
    with translation.override(language):
        with pytest.raises(ValidationError) as info:
            validate_port(99999)
        # Messages are lazy: they take the language active when they are read.
        assert expected in info.value.messages[0]


def test_the_catalogue_is_compiled_and_complete():
    import subprocess
    from pathlib import Path

    po = Path(__file__).resolve().parents[2] / "locale/ja/LC_MESSAGES/django.po"
    assert po.with_suffix(".mo").exists()
    stats = subprocess.run(["msgfmt", "--check", "--statistics", "-o", "/dev/null", str(po)],
                           capture_output=True, text=True, check=True).stderr
    assert "untranslated" not in stats and "fuzzy" not in stats, stats


def test_a_models_help_text_is_in_the_readers_language_not_the_one_at_import():
    from api.models import Webhook

    help_text = Webhook._meta.get_field("events").help_text
    with translation.override("ja"):
        assert str(help_text).startswith("送信するイベント")
    with translation.override("en"):
        assert str(help_text).startswith("Which events are sent")
