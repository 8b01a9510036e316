"""Tokens for the personas of the root conftest.py (the owner, operator and viewer
of Msen, and an outsider who owns another organisation and must find nothing of
Msen's), and the worlds they act on, each certificate issued."""

from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from api.models import APIToken
from certificates.tests.factories import issued_world


@pytest.fixture(autouse=True)
def _generous_throttle(settings):
    settings.API_THROTTLE_RATE = "100000/min"


@pytest.fixture
def world(organization, tmp_path):
    return issued_world(organization, tmp_path)


@pytest.fixture
def other_world(other_organization, tmp_path):
    return issued_world(other_organization, tmp_path)


def make_token(user, scopes=("read", "write"), **fields):
    token, raw = APIToken.issue(user=user, name=f"{user.username} token", scopes=scopes,
                                expires_at=fields.pop("expires_at", timezone.now()
                                                      + timedelta(days=30)))
    return token, raw


def client_for(raw):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    return client


@pytest.fixture
def as_user():
    """as_user(user, scopes=...) -> an APIClient sending a fresh token of `user`."""

    def make(user, scopes=("read", "write")):
        return client_for(make_token(user, scopes)[1])

    return make
