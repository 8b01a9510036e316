"""A session ends after SESSION_IDLE_SECONDS without a request and, whatever
happens, SESSION_MAX_SECONDS after sign-in. Time moves by rewriting the
session's stored stamps, not by waiting."""

import time

import pytest
from django.conf import settings
from django.urls import reverse

from accounts.middleware import SESSION_SEEN_KEY, SESSION_STARTED_KEY

pytestmark = pytest.mark.django_db


def shift(client, *, started=0, seen=0):
    """Pretend sign-in was `started` seconds ago and the last request `seen` ago."""
    session = client.session
    now = time.time()
    session[SESSION_STARTED_KEY] = now - started
    session[SESSION_SEEN_KEY] = now - seen
    session.save()


def dashboard(client):
    return client.get(reverse("certificates:dashboard"))


def test_sign_in_stamps_the_session(client, operator):
    client.force_login(operator)
    assert SESSION_STARTED_KEY in client.session
    assert SESSION_SEEN_KEY in client.session


def test_an_idle_session_ends(client, operator):
    client.force_login(operator)
    shift(client, started=settings.SESSION_IDLE_SECONDS + 10,
          seen=settings.SESSION_IDLE_SECONDS + 5)
    response = dashboard(client)
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))
    assert "_auth_user_id" not in client.session


def test_activity_keeps_a_session_alive(client, operator):
    client.force_login(operator)
    shift(client, started=settings.SESSION_IDLE_SECONDS + 10,
          seen=settings.SESSION_IDLE_SECONDS - 120)
    assert dashboard(client).status_code == 200
    # The request moved "last seen" to now: the idle time starts again.
    assert time.time() - client.session[SESSION_SEEN_KEY] < 60
    assert dashboard(client).status_code == 200


def test_a_session_ends_at_its_maximum_age_even_when_busy(client, operator):
    client.force_login(operator)
    shift(client, started=settings.SESSION_MAX_SECONDS + 5, seen=1)
    response = dashboard(client)
    assert response.status_code == 302
    assert "_auth_user_id" not in client.session


def test_an_ended_session_no_longer_reaches_the_api(client, operator):
    client.force_login(operator)
    assert client.get("/api/v1/certificates/").status_code == 200
    shift(client, started=settings.SESSION_MAX_SECONDS + 5, seen=1)
    assert client.get("/api/v1/certificates/").status_code == 401

