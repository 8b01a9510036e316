"""Invitations over the API: administrators invite and revoke, with the same
neutral answer as the pages, and every step in the audit log."""

import re

import pytest
from django.core import mail

from accounts.models import Invitation, Membership, Role
from certificates.models import AuditEvent

pytestmark = pytest.mark.django_db

NEUTRAL = "If the address can be invited, an e-mail with a link was sent to it."


@pytest.fixture(autouse=True)
def _english(settings):
    settings.LANGUAGE_CODE = "en"


def test_an_administrator_invites_over_the_api_and_the_person_joins(
        client, owner, outsider, organization, as_user):
    api = as_user(owner)
    response = api.post("/api/v1/invitations/", {"email": "outsider@example.test",
                                                 "role": "operator"}, format="json")
    assert response.status_code == 202 and response.json() == {"detail": NEUTRAL}
    unknown = api.post("/api/v1/invitations/", {"email": "nobody@example.test",
                                                "role": "operator"}, format="json")
    assert unknown.status_code == 202 and unknown.json() == response.json()
    listed = api.get("/api/v1/invitations/").json()["results"]
    assert sorted(row["email"] for row in listed) == ["nobody@example.test",
                                                      "outsider@example.test"]
    assert all("token" not in str(row) for row in listed)

    path = re.search(r"https?://[^/\s]+(/invitations/[^/\s]+/)", mail.outbox[0].body).group(1)
    client.force_login(outsider)
    client.post(path)
    assert Membership.objects.get(user=outsider, organization=organization).role == (
        Role.OPERATOR)
    assert AuditEvent.objects.filter(action=AuditEvent.Action.INVITATION_SENT,
                                     params__via="api").count() == 2


def test_an_invitation_is_revoked_over_the_api(owner, as_user):
    api = as_user(owner)
    api.post("/api/v1/invitations/", {"email": "new@example.test", "role": "viewer"},
             format="json")
    invitation = Invitation.objects.get()
    assert api.delete(f"/api/v1/invitations/{invitation.pk}/").status_code == 204
    invitation.refresh_from_db()
    assert invitation.revoked_at is not None
    assert api.get("/api/v1/invitations/").json()["count"] == 0
    assert AuditEvent.objects.filter(action=AuditEvent.Action.INVITATION_REVOKED).exists()


def test_only_administrators_invite_and_only_owners_invite_owners(
        owner, operator, organization, django_user_model, as_user):
    admin = django_user_model.objects.create_user(username="admin", email="a@example.test")
    Membership.objects.create(user=admin, organization=organization, role=Role.ADMIN)
    assert as_user(operator).post("/api/v1/invitations/", {
        "email": "x@example.test", "role": "viewer"}, format="json").status_code == 403
    refused = as_user(admin).post("/api/v1/invitations/", {
        "email": "x@example.test", "role": "owner"}, format="json")
    assert refused.status_code == 400
    assert [e["field"] for e in refused.json()["errors"]] == ["role"]
    as_user(owner).post("/api/v1/invitations/", {"email": "x@example.test", "role": "owner"},
                        format="json")
    invitation = Invitation.objects.get()
    assert as_user(admin).delete(f"/api/v1/invitations/{invitation.pk}/").status_code == 403
    assert as_user(operator).get("/api/v1/invitations/").json()["count"] == 0
    bad = as_user(owner).post("/api/v1/invitations/", {"email": "not-an-address",
                                                       "role": "viewer"}, format="json")
    assert bad.status_code == 400 and bad.json()["errors"][0]["field"] == "email"


def test_an_outsider_sees_and_revokes_none_of_another_organisations_invitations(
        owner, outsider, as_user):
    as_user(owner).post("/api/v1/invitations/", {"email": "x@example.test", "role": "viewer"},
                        format="json")
    invitation = Invitation.objects.get()
    api = as_user(outsider)
    assert api.get("/api/v1/invitations/").json()["count"] == 0
    assert api.delete(f"/api/v1/invitations/{invitation.pk}/").status_code == 404
