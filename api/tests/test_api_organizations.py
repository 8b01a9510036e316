"""Organisations and their members through the API, with the members page's
rules: everyone sees their own, administrators change names, time zones and
roles and take people out, only owners touch owners, nobody their own role, the
last owner stays; every change audited, another organisation's a 404."""

import pytest
from rest_framework.test import APIClient

from accounts.models import Membership, Role
from certificates.models import AuditEvent

pytestmark = pytest.mark.django_db


def api_of(user):
    api = APIClient(HTTP_ACCEPT_LANGUAGE="en")
    api.force_authenticate(user)
    return api


def errors_of(response, field):
    return " ".join(e["message"] for e in response.data["errors"] if e["field"] == field)


@pytest.fixture
def newcomer(django_user_model, organization):
    user = django_user_model.objects.create_user(username="newcomer",
                                                 email="newcomer@example.test")
    return Membership.objects.create(user=user, organization=organization, role=Role.VIEWER)


def test_people_see_their_own_organisations_and_members_only(viewer, organization, outsider):
    api = api_of(viewer)

    listed = api.get("/api/v1/organizations/").data["results"]
    people = api.get("/api/v1/members/").data["results"]

    assert [o["name"] for o in listed] == ["Msen"]
    assert {p["username"] for p in people} == {"viewer"}
    assert people[0]["email"] == "viewer@example.test" and people[0]["role"] == "viewer"
    assert api.get(f"/api/v1/organizations/{outsider.memberships.get().organization_id}/"
                   ).status_code == 404


def test_an_administrator_changes_the_name_and_time_zone(admin, organization):
    response = api_of(admin).patch(f"/api/v1/organizations/{organization.pk}/",
                                   {"name": "Msen Inc.", "time_zone": "Europe/Berlin"},
                                   format="json")

    assert response.status_code == 200, response.data
    organization.refresh_from_db()
    assert (organization.name, organization.time_zone) == ("Msen Inc.", "Europe/Berlin")
    event = AuditEvent.objects.get(action=AuditEvent.Action.ORGANIZATION_CHANGED)
    assert sorted(event.params["fields"]) == ["name", "time_zone"]
    assert event.params["via"] == "api" and event.user == admin


def test_an_unknown_time_zone_is_refused_by_its_field(admin, organization):
    response = api_of(admin).patch(f"/api/v1/organizations/{organization.pk}/",
                                   {"time_zone": "Asia/Tokio"}, format="json")

    assert response.status_code == 400
    assert "Asia/Tokio" in errors_of(response, "time_zone")
    organization.refresh_from_db()
    assert organization.time_zone != "Asia/Tokio"


def test_operators_change_nothing(operator, organization, newcomer):
    api = api_of(operator)

    assert api.patch(f"/api/v1/organizations/{organization.pk}/", {"name": "Mine"},
                     format="json").status_code == 403
    assert api.patch(f"/api/v1/members/{newcomer.pk}/", {"role": "operator"},
                     format="json").status_code == 403
    assert api.delete(f"/api/v1/members/{newcomer.pk}/").status_code == 403


def test_an_administrator_changes_a_role_and_it_is_audited(admin, newcomer):
    response = api_of(admin).patch(f"/api/v1/members/{newcomer.pk}/", {"role": "operator"},
                                   format="json")

    assert response.status_code == 200 and response.data["role"] == "operator"
    newcomer.refresh_from_db()
    assert newcomer.role == Role.OPERATOR
    event = AuditEvent.objects.get(action=AuditEvent.Action.ROLE_CHANGED)
    assert event.params == {"from_role": "viewer", "to_role": "operator", "via": "api"}


def test_administrators_neither_make_owners_nor_touch_them(admin, owner, newcomer):
    api = api_of(admin)
    owners = Membership.objects.get(user=owner)

    assert api.patch(f"/api/v1/members/{newcomer.pk}/", {"role": "owner"},
                     format="json").status_code == 403
    assert api.patch(f"/api/v1/members/{owners.pk}/", {"role": "viewer"},
                     format="json").status_code == 403
    assert api.delete(f"/api/v1/members/{owners.pk}/").status_code == 403
    assert Membership.objects.get(user=owner).role == Role.OWNER


def test_the_last_owner_stays(owner, organization, django_user_model):
    second = Membership.objects.create(
        user=django_user_model.objects.create_user(username="second"),
        organization=organization, role=Role.OWNER)
    mine = Membership.objects.get(user=owner)
    api = api_of(owner)

    # Another owner may be demoted, while one remains...
    assert api.patch(f"/api/v1/members/{second.pk}/", {"role": "admin"},
                     format="json").status_code == 200
    # ...and the one left can neither demote nor remove themself.
    assert api.patch(f"/api/v1/members/{mine.pk}/", {"role": "admin"},
                     format="json").status_code == 403
    assert api.delete(f"/api/v1/members/{mine.pk}/").status_code == 403
    assert list(Membership.objects.filter(organization=organization, role=Role.OWNER)) == [mine]


def test_an_administrator_takes_a_person_out(admin, newcomer):
    assert api_of(admin).delete(f"/api/v1/members/{newcomer.pk}/").status_code == 204

    assert not Membership.objects.filter(pk=newcomer.pk).exists()
    event = AuditEvent.objects.get(action=AuditEvent.Action.MEMBER_REMOVED)
    assert event.subject == "newcomer" and event.params["via"] == "api"


def test_another_organisations_members_are_not_found(outsider, newcomer):
    api = api_of(outsider)

    assert api.patch(f"/api/v1/members/{newcomer.pk}/", {"role": "admin"},
                     format="json").status_code == 404
    assert api.delete(f"/api/v1/members/{newcomer.pk}/").status_code == 404
    assert Membership.objects.filter(pk=newcomer.pk, role=Role.VIEWER).exists()
