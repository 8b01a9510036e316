"""bootstrap_portal gives the first administrator an e-mail address, since owner
alerts go nowhere without one, or says how to give it."""

from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command

pytestmark = pytest.mark.django_db


def bootstrap(*args):
    out = StringIO()
    call_command("bootstrap_portal", *args, stdout=out)
    return out.getvalue()


def first_admin():
    return get_user_model().objects.get(is_superuser=True)


def test_email_option_is_stored_on_the_first_administrator(monkeypatch):
    monkeypatch.delenv("PORTAL_ADMIN_EMAIL", raising=False)
    out = bootstrap("--email", "owner@example.org")
    assert first_admin().email == "owner@example.org"
    assert "no e-mail address" not in out


def test_email_from_the_environment(monkeypatch):
    monkeypatch.setenv("PORTAL_ADMIN_EMAIL", "ops@example.org")
    bootstrap()
    assert first_admin().email == "ops@example.org"


def test_an_invalid_address_is_refused_by_its_name(monkeypatch):
    monkeypatch.setenv("PORTAL_ADMIN_EMAIL", "not-an-address")
    with pytest.raises(CommandError, match="PORTAL_ADMIN_EMAIL.*not-an-address"):
        bootstrap()
    with pytest.raises(CommandError, match="--email.*nope@"):
        bootstrap("--email", "nope@")
    assert not get_user_model().objects.exists()


def test_without_an_address_it_says_how_to_give_one(monkeypatch):
    monkeypatch.delenv("PORTAL_ADMIN_EMAIL", raising=False)
    out = bootstrap()
    assert first_admin().email == ""
    assert "no e-mail address" in out
    assert "manage.py bootstrap_portal --email" in out
    # Every later start reminds, until an address is given.
    assert "no e-mail address" in bootstrap()


def test_an_existing_administrator_without_an_address_gets_one(monkeypatch):
    monkeypatch.delenv("PORTAL_ADMIN_EMAIL", raising=False)
    bootstrap()
    out = bootstrap("--email", "late@example.org")
    assert first_admin().email == "late@example.org"
    assert "no e-mail address" not in out
    # An address set since is a person's choice; a restart leaves it.
    bootstrap("--email", "other@example.org")
    assert first_admin().email == "late@example.org"


class Terminal:
    """Standard input as a person's terminal."""

    @staticmethod
    def isatty():
        return True


def test_at_a_terminal_it_asks_until_the_address_is_valid(monkeypatch):
    monkeypatch.delenv("PORTAL_ADMIN_EMAIL", raising=False)
    answers = iter(["not an address", "first@example.org"])
    monkeypatch.setattr("builtins.input", lambda prompt: next(answers))
    err = StringIO()

    out = StringIO()
    call_command("bootstrap_portal", stdin=Terminal(), stdout=out, stderr=err)

    assert first_admin().email == "first@example.org"
    assert "'not an address' is not a valid e-mail address" in err.getvalue()
    assert "no e-mail address" not in out.getvalue()


def test_a_blank_answer_leaves_it_for_later_and_says_how(monkeypatch):
    monkeypatch.delenv("PORTAL_ADMIN_EMAIL", raising=False)
    monkeypatch.setattr("builtins.input", lambda prompt: "")

    out = StringIO()
    call_command("bootstrap_portal", stdin=Terminal(), stdout=out)

    assert first_admin().email == ""
    assert "manage.py bootstrap_portal --email" in out.getvalue()


def test_no_input_and_no_terminal_never_ask(monkeypatch):
    monkeypatch.delenv("PORTAL_ADMIN_EMAIL", raising=False)

    def asked(prompt):
        raise AssertionError("asked without a terminal")

    monkeypatch.setattr("builtins.input", asked)
    call_command("bootstrap_portal", "--no-input", stdin=Terminal(), stdout=StringIO())
    assert first_admin().email == ""
