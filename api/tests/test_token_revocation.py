"""A person's API tokens are revoked when their password changes, when they are
deactivated and when they leave an organisation; nobody else's are touched."""

from datetime import timedelta

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from accounts.models import Membership
from api.models import APIToken, Scope

pytestmark = pytest.mark.django_db


def token_for(user):
    token, raw = APIToken.issue(user=user, name="sync", scopes=[Scope.READ],
                                expires_at=timezone.now() + timedelta(days=30))
    return token, raw


def works(raw):
    return Client().get("/api/v1/certificates/",
                        HTTP_AUTHORIZATION=f"Bearer {raw}").status_code == 200


def test_changing_the_password_on_its_page_revokes_the_tokens(client, operator, owner):
    _mine, raw = token_for(operator)
    _theirs, other = token_for(owner)
    assert works(raw)
    client.force_login(operator)
    response = client.post(reverse("password_change"), {
        "old_password": "pw-operator", "new_password1": "a-new-Secret-42",
        "new_password2": "a-new-Secret-42"})
    assert response.status_code == 302
    assert not works(raw)
    assert works(other)


def test_a_password_set_anywhere_revokes_the_tokens(operator):
    token, raw = token_for(operator)
    operator.set_password("another-Secret-43")
    operator.save()
    token.refresh_from_db()
    assert token.revoked_at is not None and not works(raw)


def test_signing_in_does_not_revoke_the_tokens(client, operator):
    _token, raw = token_for(operator)
    client.post(reverse("login"), {"login": "operator", "password": "pw-operator"})
    assert "_auth_user_id" in client.session
    assert works(raw)


def test_deactivating_a_person_revokes_their_tokens(operator):
    _token, raw = token_for(operator)
    operator.is_active = False
    operator.save(update_fields=["is_active"])
    operator.is_active = True
    operator.save()
    assert not works(raw)


def test_leaving_the_organisation_revokes_the_tokens(client, owner, operator):
    _token, raw = token_for(operator)
    _kept, other = token_for(owner)
    membership = Membership.objects.get(user=operator)
    client.force_login(owner)
    response = client.post(reverse("certificates:member_remove", args=[membership.pk]))
    assert response.status_code == 302
    assert not Membership.objects.filter(pk=membership.pk).exists()
    assert not works(raw)
    assert works(other)
