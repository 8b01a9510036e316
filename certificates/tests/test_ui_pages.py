"""The browser UI's promises, page by page: what each person sees and may do.

Viewers see but cannot act; operators renew and deploy; administrators download
private keys and manage members; an outsider gets 404 for everything. The
dashboard and the list: test_ui_states_and_lists.py; forms: test_ui_forms.py; a
person's organisation, language and time zone: test_ui_context.py.
"""

import pytest
from django.urls import reverse

from accounts.models import Membership, Role
from accounts.tests.factors import reauthenticate
from certificates.models import AuditEvent, RenewalRun
from certificates.tests.pages import page

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def english(client):
    """Messages are asserted in English; the Japanese pages are the browser test's."""
    client.defaults["HTTP_ACCEPT_LANGUAGE"] = "en"


LIST_PAGES = ["certificates:dashboard", "certificates:certificates", "certificates:hosts",
              "certificates:ca_accounts", "certificates:orders", "certificates:runs",
              "certificates:certificate_create", "certificates:host_create",
              "certificates:ca_account_create", "certificates:members"]


@pytest.mark.parametrize("name", LIST_PAGES)
def test_every_list_page_renders_for_the_owner(client, world, owner, name):
    client.force_login(owner)
    page(client, name)


def test_the_certificate_page_shows_names_versions_deployments_and_runs(client, world, owner):
    client.force_login(owner)
    cert, version = world["certificate"], world["version"]
    html = page(client, "certificates:certificate", cert.pk)
    assert cert.common_name in html
    assert version.fingerprint_sha256 in html
    assert version.serial in html
    assert world["host"].name in html
    assert reverse("certificates:run", args=[world["run"].pk]) in html
    assert 'id="renew-now"' in html


def test_the_certificate_page_never_shows_a_private_key_or_tsig_secret(client, world, owner):
    client.force_login(owner)
    html = page(client, "certificates:certificate", world["certificate"].pk)
    assert "PRIVATE KEY" not in html
    secret = world["dns_credential"].secret_values["tsig_secret"]
    html = page(client, "certificates:dns_credential_edit", world["dns_credential"].pk)
    assert secret not in html
    assert secret not in page(client, "certificates:dns_credentials")
    html = page(client, "certificates:host_edit", world["host"].pk)
    assert "PRIVATE KEY" not in html


def test_a_viewer_sees_everything_but_no_action(client, world, viewer):
    client.force_login(viewer)
    html = page(client, "certificates:certificate", world["certificate"].pk)
    for action in ('id="renew-now"', 'id="deploy-now"', 'id="edit"', "download/key"):
        assert action not in html
    assert "Add a certificate" not in page(client, "certificates:certificates")
    html = page(client, "certificates:ca_account", world["ca_account"].pk)
    assert 'id="top-up-submit"' not in html


def test_a_viewer_is_refused_every_action(client, world, viewer):
    client.force_login(viewer)
    pk = world["certificate"].pk
    for name, args in [("certificates:renew", [pk]), ("certificates:deploy", [pk]),
                       ("certificates:certificate_edit", [pk]),
                       ("certificates:download_key", [pk]),
                       ("certificates:top_up", [world["ca_account"].pk]),
                       ("certificates:host_key_fetch", [world["host"].pk]),
                       ("certificates:host_test", [world["host"].pk])]:
        assert client.post(reverse(name, args=args)).status_code == 403, name
    assert client.get(reverse("certificates:certificate_create")).status_code == 403
    assert RenewalRun.objects.count() == 1  # the one the world started with


def test_an_operator_may_renew_but_not_top_up_or_manage_hosts(client, world, operator):
    client.force_login(operator)
    RenewalRun.objects.all().delete()
    pk = world["certificate"].pk
    response = client.post(reverse("certificates:renew", args=[pk]), {"confirm": "1"})
    run = RenewalRun.objects.get(certificate_id=pk)
    assert response["Location"] == reverse("certificates:run", args=[run.pk])
    assert run.requested_by == operator and run.trigger == RenewalRun.Trigger.MANUAL
    assert client.post(reverse("certificates:top_up", args=[world["ca_account"].pk]),
                       {"amount": "100"}).status_code == 403
    assert client.get(reverse("certificates:host_create")).status_code == 403


def test_renew_now_twice_opens_one_run(client, world, owner):
    client.force_login(owner)
    RenewalRun.objects.all().delete()
    url = reverse("certificates:renew", args=[world["certificate"].pk])
    first, second = client.post(url, {"confirm": "1"}), client.post(url, {"confirm": "1"})
    assert first["Location"] == second["Location"]
    assert RenewalRun.objects.count() == 1


def test_deploy_now_opens_a_deploy_only_run_of_the_chosen_hosts(
        client, world, operator, monkeypatch, django_capture_on_commit_callbacks):
    from certificates import tasks

    sent = []
    monkeypatch.setattr(tasks.renew, "delay", sent.append)
    RenewalRun.objects.all().delete()
    cert = world["certificate"]
    client.force_login(operator)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("certificates:deploy", args=[cert.pk]),
                               {"host": [str(world["host"].pk)]})
    [run] = RenewalRun.objects.all()
    assert response["Location"] == reverse("certificates:run", args=[run.pk])
    assert (run.intent, run.hosts, run.requested_by) == (
        RenewalRun.Intent.DEPLOY, [world["host"].pk], operator)
    assert sent == [run.pk]


def test_deploy_now_to_a_host_that_is_not_the_certificates_is_refused_not_widened(
        client, world, operator):
    RenewalRun.objects.all().delete()
    cert = world["certificate"]
    client.force_login(operator)
    response = client.post(reverse("certificates:deploy", args=[cert.pk]),
                           {"host": [str(world["host"].pk), "99999"]}, follow=True)
    assert "Hosts: Choose among the certificate&#x27;s hosts" in response.content.decode()
    assert not RenewalRun.objects.exists()


NEW_OBJECT_URLS = [
    ("certificates:certificate_edit", "certificate", "get"),
    ("certificates:renew", "certificate", "post"),
    ("certificates:deploy", "certificate", "post"),
    ("certificates:download_key", "certificate", "post"),
    ("certificates:host_edit", "host", "get"),
    ("certificates:host_key_fetch", "host", "post"),
    ("certificates:host_key_confirm", "host", "post"),
    ("certificates:host_test", "host", "post"),
    ("certificates:top_up", "ca_account", "post"),
    ("certificates:ca_account_edit", "ca_account", "get"),
    ("certificates:run_steps", "run", "get"),
]


@pytest.mark.parametrize("name,key,method", NEW_OBJECT_URLS)
def test_an_outsider_gets_404_for_every_action(client, world, outsider, name, key, method):
    client.force_login(outsider)
    url = reverse(name, args=[world[key].pk])
    assert getattr(client, method)(url).status_code == 404


@pytest.mark.parametrize("what", ["cert", "chain", "fullchain"])
def test_an_outsider_gets_404_for_downloads(client, world, outsider, what):
    client.force_login(outsider)
    url = reverse("certificates:download", args=[world["certificate"].pk, what])
    assert client.get(url).status_code == 404


def test_an_outsider_sees_nothing_of_another_organisation_in_lists(client, world, outsider):
    client.force_login(outsider)
    for name in LIST_PAGES[:6]:
        html = page(client, name)
        for key in ("certificate", "host", "ca_account"):
            assert str(world[key]) not in html, (name, key)


def test_members_download_the_certificate_and_chain(client, world, viewer):
    cert = world["certificate"]
    client.force_login(viewer)
    response = client.get(reverse("certificates:download", args=[cert.pk, "fullchain"]))
    assert response.status_code == 200
    assert b"BEGIN CERTIFICATE" in response.content and b"PRIVATE KEY" not in response.content
    assert "attachment" in response["Content-Disposition"]


def test_the_live_progress_endpoint_lists_the_runs_steps(client, world, viewer):
    client.force_login(viewer)
    run = world["run"]
    run.step("challenge", "started", "writing the token")
    data = client.get(reverse("certificates:run_steps", args=[run.pk])).json()
    assert data["open"] is True and data["status"] == "queued"
    assert [step["name"] for step in data["steps"]] == ["order", "challenge"]
    assert data["steps"][1]["detail"] == "writing the token"
    assert data["steps"][0]["host"] == world["host"].name
    assert "private_key" not in str(data)
    # Started, then done: one line that says how it ended.
    run.step("challenge", "done", "token written")
    data = client.get(reverse("certificates:run_steps", args=[run.pk])).json()
    assert [(s["name"], s["status"]) for s in data["steps"]] == [("order", "done"),
                                                                  ("challenge", "done")]


def test_the_run_page_follows_an_open_run_and_not_a_finished_one(client, world, owner):
    client.force_login(owner)
    run = world["run"]
    assert "data-run-poll" in page(client, "certificates:run", run.pk)
    RenewalRun.objects.filter(pk=run.pk).update(status=RenewalRun.Status.SUCCEEDED)
    assert "data-run-poll" not in page(client, "certificates:run", run.pk)


# -- the private key: administrators only, audited -----------------------------------

def test_an_administrator_downloads_the_private_key_and_it_is_audited(client, world, admin):
    client.force_login(admin)
    reauthenticate(client, admin)
    cert = world["certificate"]
    response = client.post(reverse("certificates:download_key", args=[cert.pk]),
                           REMOTE_ADDR="192.0.2.7")
    assert response.status_code == 200
    assert b"PRIVATE KEY" in response.content
    assert response["Cache-Control"] == "no-store"
    event = AuditEvent.objects.get()
    assert (event.user, event.certificate, event.action, event.ip_address) == (
        admin, cert, AuditEvent.Action.KEY_DOWNLOAD, "192.0.2.7")
    assert event.detail == world["version"].fingerprint_sha256


def test_an_operator_may_not_download_the_private_key(client, world, operator):
    client.force_login(operator)
    html = page(client, "certificates:certificate", world["certificate"].pk)
    assert "download/key" not in html
    response = client.post(reverse("certificates:download_key",
                                   args=[world["certificate"].pk]))
    assert response.status_code == 403 and b"PRIVATE KEY" not in response.content


def test_the_private_key_is_never_a_get(client, world, admin):
    client.force_login(admin)
    response = client.get(reverse("certificates:download_key", args=[world["certificate"].pk]))
    assert response.status_code == 405


# -- members -----------------------------------------------------------------------


def test_an_administrator_changes_a_members_role_and_removes_them(client, world, admin,
                                                                 django_user_model):
    newcomer = django_user_model.objects.create_user(username="newcomer",
                                                     email="new@example.test")
    membership = Membership.objects.create(user=newcomer, role=Role.VIEWER,
                                           organization=world["certificate"].organization)
    client.force_login(admin)
    client.post(reverse("certificates:member_role", args=[membership.pk]), {"role": "operator"})
    membership.refresh_from_db()
    assert membership.role == Role.OPERATOR
    # Administrators do not make owners, nor touch them.
    assert client.post(reverse("certificates:member_role", args=[membership.pk]),
                       {"role": "owner"}).status_code == 403
    client.post(reverse("certificates:member_remove", args=[membership.pk]))
    assert not Membership.objects.filter(user=newcomer).exists()


def test_an_invitation_to_a_malformed_address_is_a_field_error(client, world, admin):
    client.force_login(admin)
    response = client.post(reverse("certificates:member_invite"),
                           {"email": "nobody", "role": "viewer", "language": "en"})
    assert response.status_code == 200 and "email" in response.context["form"].errors


def test_nobody_changes_their_own_role_nor_an_owners_unless_an_owner(client, world, admin,
                                                                   owner, operator):
    client.force_login(admin)
    mine = Membership.objects.get(user=admin)
    owners = Membership.objects.get(user=owner)
    assert client.post(reverse("certificates:member_role", args=[mine.pk]),
                       {"role": "owner"}).status_code == 403
    assert client.post(reverse("certificates:member_remove", args=[owners.pk])
                       ).status_code == 403
    client.force_login(operator)
    assert client.post(reverse("certificates:member_invite"),
                       {"email": "a@example.test", "role": "viewer",
                        "language": "en"}).status_code == 403
    assert 'id="invite-member"' not in page(client, "certificates:members")


def test_an_owner_removes_another_owner_but_never_themself(client, world, owner,
                                                           django_user_model):
    second = django_user_model.objects.create_user(username="second")
    other = Membership.objects.create(user=second, organization=world["certificate"].organization,
                                      role=Role.OWNER)
    client.force_login(owner)
    mine = Membership.objects.get(user=owner)
    assert client.post(reverse("certificates:member_remove", args=[mine.pk])).status_code == 403
    client.post(reverse("certificates:member_remove", args=[other.pk]))
    assert list(Membership.objects.filter(role=Role.OWNER).values_list("user", flat=True)) == [
        owner.pk]


def test_an_outsider_cannot_touch_another_organisations_members(client, world, owner, outsider):
    client.force_login(outsider)
    membership = Membership.objects.get(user=owner)
    for name in ("certificates:member_role", "certificates:member_remove"):
        assert client.post(reverse(name, args=[membership.pk]),
                           {"role": "viewer"}).status_code == 404
    assert "<strong>owner</strong>" not in page(client, "certificates:members")


def test_the_certificate_page_folds_finished_runs_and_opens_a_failed_one(client, world, owner):
    client.force_login(owner)
    run, cert = world["run"], world["certificate"]
    RenewalRun.objects.filter(pk=run.pk).update(status=RenewalRun.Status.SUCCEEDED)
    html = page(client, "certificates:certificate", cert.pk)
    assert '<details class="run">' in html and '<details class="run" open>' not in html
    RenewalRun.objects.filter(pk=run.pk).update(status=RenewalRun.Status.FAILED)
    assert '<details class="run" open>' in page(client, "certificates:certificate", cert.pk)


def test_an_administrator_deletes_a_certificate_after_its_confirmation_page(client, world,
                                                                            admin):

    client.force_login(admin)
    reauthenticate(client, admin)
    cert = world["certificate"]
    RenewalRun.objects.filter(certificate=cert).update(status=RenewalRun.Status.SUCCEEDED)
    confirm = page(client, "certificates:certificate_delete", cert.pk)
    assert "This cannot be undone" in confirm and world["host"].name in confirm
    response = client.post(reverse("certificates:certificate_delete", args=[cert.pk]),
                           {"confirm": "1"})
    assert response.status_code == 302
    assert not type(cert).objects.filter(pk=cert.pk).exists()
    assert AuditEvent.objects.filter(action=AuditEvent.Action.CERTIFICATE_DELETED,
                                     subject=cert.common_name).exists()


def test_a_certificate_with_a_run_under_way_is_not_deleted(client, world, admin):
    client.force_login(admin)
    cert = world["certificate"]
    RenewalRun.objects.filter(certificate=cert).update(status=RenewalRun.Status.RUNNING)
    client.post(reverse("certificates:certificate_delete", args=[cert.pk]), {"confirm": "1"})
    assert type(cert).objects.filter(pk=cert.pk).exists()


def test_an_operator_may_not_delete_a_certificate(client, world, operator):
    client.force_login(operator)
    cert = world["certificate"]
    response = client.post(reverse("certificates:certificate_delete", args=[cert.pk]),
                           {"confirm": "1"})
    assert response.status_code == 403
    assert type(cert).objects.filter(pk=cert.pk).exists()
