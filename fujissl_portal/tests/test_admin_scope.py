"""The Django admin obeys the portal's rules for a staff member of one organisation.

The staff member is an administrator of one organisation with every model
permission, but not a superuser. Another organisation holds one of everything,
each named so that its name gives it away ("elsewhere"), and a person
("outsider"). Nothing of it may appear on any admin page, and the rows that are
append-only (ledger, audit log, a token's revocation) or that the portal's
members page guards (roles) cannot be changed through the admin.
"""

import re
from datetime import timedelta
from urllib.parse import urlencode

import pytest
from django.contrib import admin
from django.contrib.auth.models import Permission
from django.urls import reverse
from django.utils import timezone

from accounts.models import Membership, Role, User
from api.models import APIToken, Webhook, WebhookDelivery
from certificates.models import (
    AuditEvent,
    CAAccount,
    Certificate,
    Deployment,
    DeployRequest,
    DepositEntry,
    Notification,
    Order,
    TargetHost,
)
from certificates.tests.factories import one_of_everything

pytestmark = pytest.mark.django_db

GIVEAWAY = re.compile(r"elsewhere|outsider", re.IGNORECASE)


def _extras(organization, person, word):
    """What one_of_everything leaves out: audit, webhooks, tokens, the queue."""
    certificate = Certificate.objects.get(organization=organization)
    deployment = Deployment.objects.get(certificate=certificate)
    event = AuditEvent.objects.create(organization=organization, action=AuditEvent.Action.TOP_UP,
                                      user=person, subject=f"{word}-ledger")
    webhook = Webhook.objects.create(organization=organization, secret="s",
                                     url=f"https://hooks.{word}.test/in")
    delivery = WebhookDelivery.objects.create(webhook=webhook, event="renewal.failed",
                                              payload={"about": word})
    token, _clear = APIToken.issue(user=person, name=f"{word}-token", scopes=["read"],
                                   expires_at=timezone.now() + timedelta(days=30))
    queued = DeployRequest.objects.create(host=deployment.host, deployment=deployment,
                                          version=deployment.last_version)
    return dict(audit_event=event, webhook=webhook, delivery=delivery, token=token,
                deploy_request=queued)


@pytest.fixture
def staffer(django_user_model, organization):
    """An administrator of the organisation, staff with every permission there is."""
    user = django_user_model.objects.create_user(username="staffer", password="pw-staffer",
                                                 email="staffer@example.test", is_staff=True)
    user.user_permissions.set(Permission.objects.all())
    Membership.objects.create(user=user, organization=organization, role=Role.ADMIN)
    return user


@pytest.fixture
def ours(organization, owner, staffer, tmp_path):
    world = one_of_everything(organization, tmp_path)
    return {**world, **_extras(organization, staffer, "ours"), "organization": organization,
            "owner": owner, "staffer": staffer}


@pytest.fixture
def theirs(other_organization, outsider, tmp_path):
    world = one_of_everything(other_organization, tmp_path)
    CAAccount.objects.filter(pk=world["ca_account"].pk).update(name="Elsewhere CA")
    Certificate.objects.filter(pk=world["certificate"].pk).update(
        common_name="secret.elsewhere.test", sans=["secret.elsewhere.test"])
    TargetHost.objects.filter(pk=world["host"].pk).update(name="elsewhere-web")
    Order.objects.filter(pk=world["order"].pk).update(code="ORD-ELSEWHERE")
    DepositEntry.objects.filter(pk=world["deposit_entry"].pk).update(reference="elsewhere-topup")
    Notification.objects.filter(pk=world["notification"].pk).update(
        recipient="ops@elsewhere.test", subject="elsewhere expiring")
    world = {key: type(obj).objects.get(pk=obj.pk) for key, obj in world.items()}
    return {**world, **_extras(other_organization, outsider, "elsewhere"),
            "organization": other_organization, "outsider": outsider}


@pytest.fixture
def staff_client(client, staffer):
    client.force_login(staffer)
    return client


def _url(model, view, *args):
    return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_{view}", args=args)


def _leaks(response):
    return sorted({m.group(0).lower() for m in GIVEAWAY.finditer(response.content.decode())})


@pytest.mark.parametrize("viewer_there", [False, True], ids=["stranger", "viewer-there"])
def test_no_admin_page_shows_anything_of_another_organisation(staff_client, staffer, ours, theirs,
                                                              viewer_there):
    """Every registered model admin: its list (with its filters), its add page
    (with the other organisation's ids offered as initial values, which raw-id
    and select widgets would label), and the change page of one of its own rows.
    A viewer of the other organisation administers nothing there either."""
    if viewer_there:
        Membership.objects.create(user=staffer, organization=theirs["organization"],
                                  role=Role.VIEWER)
    their_rows = {type(obj): obj for obj in theirs.values()}
    our_rows = {type(obj): obj for obj in ours.values()}
    checked, failures = 0, []
    for model in admin.site._registry:
        pages = [_url(model, "changelist"), _url(model, "changelist") + "?_popup=1&_to_field=id"]
        initial = {
            field.name: their_rows[field.related_model].pk
            for field in model._meta.fields
            if field.is_relation and field.related_model in their_rows
        }
        pages.append(_url(model, "add") + "?" + urlencode(initial))
        if model in our_rows:
            pages.append(_url(model, "change", our_rows[model].pk))
        for page in pages:
            response = staff_client.get(page)
            checked += 1
            if response.status_code not in (200, 302, 403):
                failures.append(f"{page}: status {response.status_code}")
            # A refusal is the portal's error page, whose header rightly names
            # every organisation the person belongs to.
            elif response.status_code != 403 and (leaks := _leaks(response)):
                failures.append(f"{page}: shows {leaks}")
    assert not failures, "\n".join(failures)
    assert checked >= 3 * len(admin.site._registry)


def test_the_lists_and_their_filters_show_the_staff_members_own_rows(staff_client, ours, theirs):
    page = staff_client.get(_url(Certificate, "changelist")).content.decode()
    # The filter column names the organisation and the CA account, both ours only.
    assert ours["certificate"].common_name in page
    assert "Msen" in page and ours["ca_account"].name in page
    assert not GIVEAWAY.search(page)
    people = staff_client.get(_url(User, "changelist")).content.decode()
    assert "owner" in people and "staffer" in people and "outsider" not in people


def test_a_filter_on_a_field_across_a_relation_offers_only_visible_values(rf, staffer, ours,
                                                                         theirs):
    """No registered admin filters on such a field today; one added later must
    not read the related table whole."""
    from fujissl_portal.admin_mixins import TenantAdminMixin

    class Probe(TenantAdminMixin, admin.ModelAdmin):
        list_filter = ("ca_account__name", "ca_account")

    request = rf.get("/")
    request.user = staffer
    changelist = Probe(Order, admin.AdminSite(name="probe")).get_changelist_instance(request)
    offered = [str(choice) for spec in changelist.get_filters(request)[0]
               for choice in getattr(spec, "lookup_choices", [])]
    assert ours["ca_account"].name in " ".join(offered)
    assert not GIVEAWAY.search(" ".join(offered))


def test_the_autocomplete_offers_only_people_of_the_staff_members_organisations(
    staff_client, ours, theirs
):
    query = {"app_label": "accounts", "model_name": "membership", "field_name": "user"}
    found = staff_client.get("/admin/autocomplete/", {**query, "term": ""}).json()["results"]
    assert {row["text"] for row in found} == {"owner", "staffer"}
    found = staff_client.get("/admin/autocomplete/", {**query, "term": "out"}).json()["results"]
    assert found == []


def test_an_inline_offers_only_the_organisations_hosts(staff_client, ours, theirs):
    page = staff_client.get(_url(Certificate, "change", ours["certificate"].pk)).content.decode()
    assert 'name="deployments-0-host"' in page and ours["host"].name in page
    assert "elsewhere-web" not in page


def test_a_raw_id_box_does_not_name_another_organisations_row(staff_client, ours, theirs):
    page = staff_client.get(_url(Order, "add") + f"?certificate={theirs['certificate'].pk}")
    assert "secret.elsewhere.test" not in page.content.decode()
    page = staff_client.get(_url(Order, "add") + f"?certificate={ours['certificate'].pk}")
    assert ours["certificate"].common_name in page.content.decode()
