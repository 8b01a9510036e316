"""An object of another organisation is simply not there: 404, in pages and admin."""

import pytest
from django.urls import reverse

from accounts.models import Role
from accounts.tenancy import get_scoped_or_404, scoped
from accounts.tests.factors import give_totp
from certificates.tests.factories import one_of_everything

pytestmark = pytest.mark.django_db

OBJECT_PAGES = [
    ("certificates:certificate", "certificate"),
    ("certificates:host", "host"),
    ("certificates:ca_account", "ca_account"),
    ("certificates:order", "order"),
    ("certificates:run", "run"),
]


@pytest.fixture
def world(organization, tmp_path):
    return one_of_everything(organization, tmp_path)


@pytest.mark.parametrize("url_name,key", OBJECT_PAGES)
def test_members_of_the_organisation_see_its_object_pages(client, world, owner, operator,
                                                         url_name, key):
    url = reverse(url_name, args=[world[key].pk])
    for person in (owner, operator):
        client.force_login(person)
        assert client.get(url).status_code == 200


@pytest.mark.parametrize("url_name,key", OBJECT_PAGES)
def test_an_outsider_gets_404_for_every_object_page(client, world, outsider, url_name, key):
    client.force_login(outsider)
    assert client.get(reverse(url_name, args=[world[key].pk])).status_code == 404


@pytest.mark.parametrize("url_name,key", OBJECT_PAGES)
def test_an_anonymous_visitor_is_sent_to_the_login_page(client, world, url_name, key):
    response = client.get(reverse(url_name, args=[world[key].pk]))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


def test_the_dashboard_lists_only_the_askers_certificates(client, world, outsider, owner):
    client.force_login(outsider)
    assert world["certificate"].common_name not in client.get("/").content.decode()
    client.force_login(owner)
    assert world["certificate"].common_name in client.get("/").content.decode()


def test_the_scoping_helper_hides_every_model_from_an_outsider(world, owner, outsider):
    for key, obj in world.items():
        model = type(obj)
        assert scoped(model, owner).filter(pk=obj.pk).exists(), key
        assert not scoped(model, outsider).filter(pk=obj.pk).exists(), key


def test_the_scoping_helper_honours_the_least_role(world, operator):
    certificate = world["certificate"]
    assert scoped(type(certificate), operator, at_least=Role.OPERATOR).exists()
    assert not scoped(type(certificate), operator, at_least=Role.ADMIN).exists()


def test_get_scoped_or_404_raises_404_outside(world, outsider):
    from django.http import Http404

    with pytest.raises(Http404):
        get_scoped_or_404(type(world["certificate"]), outsider, pk=world["certificate"].pk)


def staff_of_another_organisation(user):
    """``user`` made staff with every permission of the certificates app, but
    no role in the world's organisation."""
    from django.contrib.auth.models import Permission

    user.is_staff = True
    user.save()
    user.user_permissions.set(Permission.objects.filter(content_type__app_label="certificates"))
    return user


def test_staff_who_are_not_superusers_see_only_their_organisations_in_the_admin(
    client, world, outsider
):
    client.force_login(staff_of_another_organisation(outsider))
    changelist = client.get(reverse("admin:certificates_certificate_changelist"))
    assert changelist.status_code == 200
    assert world["certificate"].common_name not in changelist.content.decode()
    change = client.get(
        reverse("admin:certificates_certificate_change", args=[world["certificate"].pk])
    )
    # The admin redirects to its index with "doesn't exist" rather than showing it.
    assert change.status_code == 302


def test_a_role_in_one_organisation_gives_no_rights_in_another(client, world, organization,
                                                               other_organization,
                                                               django_user_model):
    """An admin of one organisation who is only a viewer of another may not act on
    the other's objects, whichever organisation the header has chosen."""
    from accounts.models import Membership

    person = django_user_model.objects.create_user(username="two-hats", password="x")
    Membership.objects.create(user=person, organization=other_organization, role=Role.ADMIN)
    Membership.objects.create(user=person, organization=organization, role=Role.VIEWER)
    give_totp(person)  # an administrator somewhere must have a second factor
    client.force_login(person)
    session = client.session
    session["organization_id"] = other_organization.pk  # the header shows the admin one
    session.save()
    cert = world["certificate"]

    assert client.get(reverse("certificates:certificate", args=[cert.pk])).status_code == 200
    for name in ("certificates:download_key", "certificates:renew", "certificates:deploy"):
        assert client.post(reverse(name, args=[cert.pk])).status_code == 403, name


def test_the_deployment_queue_is_shown_in_the_admin_to_its_organisation_only(
    client, world, outsider, admin_user
):
    from certificates.models import Deployment, DeployRequest
    from certificates.tests.factories import make_current, new_version

    certificate, host = world["certificate"], world["host"]
    deployment, _created = Deployment.objects.get_or_create(certificate=certificate, host=host)
    version = new_version(certificate, certificate.common_name)
    make_current(certificate, version)
    DeployRequest.objects.create(host=host, deployment=deployment, version=version)

    give_totp(admin_user)  # staff must have a second factor
    client.force_login(admin_user)
    page = client.get(reverse("admin:certificates_deployrequest_changelist"))
    assert page.status_code == 200
    assert certificate.common_name in page.content.decode()

    client.force_login(staff_of_another_organisation(outsider))
    page = client.get(reverse("admin:certificates_deployrequest_changelist"))
    assert page.status_code == 200
    assert certificate.common_name not in page.content.decode()
