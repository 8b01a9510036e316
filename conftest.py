"""Shared fixtures: the personas every test speaks of.

The personas (DESIGN.md, house style 8): an owner and an operator of one
organisation, and an outsider who belongs to another and must be refused.
"""

import pytest

from accounts.models import Membership, Organization, Role



@pytest.fixture
def organization(db):
    return Organization.objects.create(name="Msen", slug="msen")


@pytest.fixture
def other_organization(db):
    return Organization.objects.create(name="Elsewhere", slug="elsewhere")


def _member(django_user_model, organization, username, role):
    user = django_user_model.objects.create_user(username=username, password="pw-" + username,
                                                 email=f"{username}@example.test")
    Membership.objects.create(user=user, organization=organization, role=role)
    return user


@pytest.fixture
def owner(django_user_model, organization):
    return _member(django_user_model, organization, "owner", Role.OWNER)


@pytest.fixture
def operator(django_user_model, organization):
    return _member(django_user_model, organization, "operator", Role.OPERATOR)


@pytest.fixture
def outsider(django_user_model, other_organization):
    return _member(django_user_model, other_organization, "outsider", Role.OWNER)
