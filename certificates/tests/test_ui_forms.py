"""The UI's forms: certificates with their hosts, CA accounts and their deposits,
and hosts with their keys; each error shown next to its field.
"""

import re
from decimal import Decimal

import pytest
from django.urls import reverse

from certificates.models import Certificate, DepositEntry
from certificates.tests.factories import ca_account, host, portal_host, unmanaged_rows
from certificates.tests.pages import page
from certificates.tests.pki import ssh_keygen_line, ssh_keypair

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def english(client):
    """Messages are asserted in English; the Japanese pages are the browser test's."""
    client.defaults["HTTP_ACCEPT_LANGUAGE"] = "en"


# -- forms -------------------------------------------------------------------------


def test_adding_a_certificate_with_its_hosts(client, world, owner):
    # The host already carries a certificate: a second one needs files of its own.
    host = world["host"]
    host.private_key_path, host.certificate_path = "/etc/ssl/{name}.key", "/etc/ssl/{name}.crt"
    host.ca_bundle_path, host.fullchain_path = "/etc/ssl/{name}.ca", "/etc/ssl/{name}.full"
    host.save()
    client.force_login(owner)
    response = client.post(reverse("certificates:certificate_create"), {
        "common_name": "Shop.Example.test", "sans": "cdn.example.test\n",
        "ca_account": world["ca_account"].pk, "key_type": "ec-p256", "challenge": "http-01",
        "auto_renew": "on",
        "hosts": [world["host"].pk],
        "acknowledge_warnings": "1",  # the names are in no DNS here
    })
    cert = Certificate.objects.get(common_name="shop.example.test")
    assert response["Location"] == reverse("certificates:certificate", args=[cert.pk])
    assert cert.sans == ["shop.example.test", "cdn.example.test"]
    assert list(cert.hosts.all()) == [world["host"]]


def test_http01_on_hosts_without_a_document_root_is_refused_next_to_the_hosts(
    client, world, owner, tmp_path
):
    login_key, host_key = ssh_keypair(tmp_path, "bare")
    bare = host(world["host"].organization, login_key, host_key, name="bare.example.test",
                address="127.0.0.3", document_root="")
    client.force_login(owner)
    response = client.post(reverse("certificates:certificate_create"), {
        "common_name": "shop.example.test", "ca_account": world["ca_account"].pk,
        "key_type": "ec-p256", "challenge": "http-01", "hosts": [bare.pk],
    })
    assert response.status_code == 200
    [message] = response.context["form"].errors["hosts"]
    assert "document root" in message and "bare.example.test" in message
    assert not Certificate.objects.filter(common_name="shop.example.test").exists()


def test_a_wildcard_without_dns01_is_refused_next_to_the_challenge_field(client, world, owner):
    client.force_login(owner)
    response = client.post(reverse("certificates:certificate_create"), {
        "common_name": "*.example.test", "ca_account": world["ca_account"].pk,
        "key_type": "ec-p256", "challenge": "http-01",
    })
    assert response.status_code == 200
    errors = response.context["form"].errors
    assert "challenge" in errors and "dns-01" in " ".join(errors["challenge"])
    assert 'id="id_challenge_errors"' in response.content.decode()
    assert not Certificate.objects.filter(common_name="*.example.test").exists()


def test_a_ca_account_of_another_organisation_cannot_be_chosen(client, world, owner,
                                                               other_organization):
    foreign = ca_account(other_organization, name="Foreign")
    client.force_login(owner)
    response = client.post(reverse("certificates:certificate_create"), {
        "common_name": "x.example.test", "ca_account": foreign.pk, "key_type": "ec-p256",
        "challenge": "http-01",
    })
    assert "ca_account" in response.context["form"].errors


def test_editing_a_dns01_certificate_keeps_or_changes_its_credentials(client, world, owner):
    cert = world["certificate"]
    client.force_login(owner)
    data = {"common_name": cert.common_name, "sans": "\n".join(cert.sans),
            "ca_account": cert.ca_account_id, "key_type": "rsa-2048", "challenge": "dns-01",
            "auto_renew": "on", "hosts": []}
    refused = client.post(reverse("certificates:certificate_edit", args=[cert.pk]), data)
    assert "dns_credentials" in refused.context["form"].errors

    response = client.post(reverse("certificates:certificate_edit", args=[cert.pk]), {
        **data, "dns_credentials": [world["dns_credential"].pk]})

    assert response.status_code == 302, response.context["form"].errors
    cert.refresh_from_db()
    assert list(cert.dns_credentials.all()) == [world["dns_credential"]]
    assert cert.key_type == "rsa-2048" and not cert.deployments.exists()


def test_the_edit_form_shows_the_tags_and_an_edit_keeps_them(client, world, owner):
    cert = world["certificate"]
    type(cert).objects.filter(pk=cert.pk).update(tags="prod web")
    client.force_login(owner)
    page = client.get(reverse("certificates:certificate_edit", args=[cert.pk]))
    form = page.context["form"]
    assert 'name="tags"' in page.content.decode() and form["tags"].value() == "prod web"
    data = {name: form[name].value() for name in form.fields
            if form[name].value() not in (None, "")}
    data["sans"] = "\n".join(cert.sans)
    client.post(reverse("certificates:certificate_edit", args=[cert.pk]), data)
    cert.refresh_from_db()
    assert cert.tags == "prod web"


def test_the_adoption_page_shows_the_fields_of_the_certificate_form(client, world, owner):
    [row] = unmanaged_rows(world["certificate"].organization, 1)
    client.force_login(owner)
    adopt = client.get(reverse("certificates:inventory_adopt", args=[row.pk]))
    add = client.get(reverse("certificates:certificate_create"))

    def shown(response):
        return re.findall(r'id="field-([^"]*)"', response.content.decode())

    assert sorted(shown(adopt)) == sorted(shown(add)) == sorted(adopt.context["form"].fields)


# -- CA accounts and deposits ------------------------------------------------------


def test_an_administrator_tops_up_and_sees_the_ledger(client, world, admin):
    account = world["ca_account"]
    client.force_login(admin)
    response = client.post(reverse("certificates:top_up", args=[account.pk]),
                           {"amount": "5500", "note": "invoice 42"})
    assert response.status_code == 302
    entry = DepositEntry.objects.get(note="invoice 42")
    assert entry.amount == Decimal("5500") and entry.created_by == admin
    html = page(client, "certificates:ca_account", account.pk)
    assert "invoice 42" in html and "15,500" in html


def test_a_top_up_must_be_positive(client, world, admin):
    client.force_login(admin)
    response = client.post(reverse("certificates:top_up", args=[world["ca_account"].pk]),
                           {"amount": "-5"})
    assert response.status_code == 200
    assert "amount" in response.context["form"].errors


def test_a_low_deposit_is_an_open_problem_with_its_fix(client, world, admin):
    account = world["ca_account"]
    account.low_balance_threshold = Decimal("50000")
    account.save()
    client.force_login(admin)
    html = page(client, "certificates:dashboard")
    problems = html[html.index('id="problems"'):]
    assert account.name in problems
    assert reverse("certificates:ca_account", args=[account.pk]) + "#top-up" in problems


# -- hosts -------------------------------------------------------------------------


def test_a_host_key_is_confirmed_only_with_the_fingerprint_shown(client, world, admin):
    host = world["host"]
    client.force_login(admin)
    html = page(client, "certificates:host", host.pk)
    assert host.host_key_fingerprint in html and 'id="confirm-host-key"' in html
    response = client.post(reverse("certificates:host_key_confirm", args=[host.pk]),
                           {"fingerprint": "SHA256:wrong"})
    assert response.status_code == 200 and "fingerprint" in response.context[
        "confirm_form"].errors
    host.refresh_from_db()
    assert not host.host_key_confirmed
    client.post(reverse("certificates:host_key_confirm", args=[host.pk]),
                {"fingerprint": host.host_key_fingerprint})
    host.refresh_from_db()
    assert host.host_key_confirmed and host.host_key_confirmed_by == admin


def test_a_host_key_is_confirmed_with_the_line_ssh_keygen_printed(
        client, organization, target_host, admin, tmp_path):
    host = portal_host(organization, target_host, confirmed=False)
    client.force_login(admin)
    client.post(reverse("certificates:host_key_fetch", args=[host.pk]))
    line = ssh_keygen_line(tmp_path, target_host.host_public_key)
    assert line.split()[1] == target_host.host_key_fingerprint  # the advice the page gives

    response = client.post(reverse("certificates:host_key_confirm", args=[host.pk]),
                           {"fingerprint": line})

    assert response.status_code == 302, response.context["confirm_form"].errors
    host.refresh_from_db()
    assert host.host_key_confirmed and host.host_key_confirmed_by == admin


def test_another_hosts_key_is_refused_as_a_possible_interception(
        client, organization, target_host, admin, tmp_path):
    host = portal_host(organization, target_host, confirmed=False)
    client.force_login(admin)
    client.post(reverse("certificates:host_key_fetch", args=[host.pk]))
    other = ssh_keygen_line(tmp_path, ssh_keypair(tmp_path)[1])

    response = client.post(reverse("certificates:host_key_confirm", args=[host.pk]),
                           {"fingerprint": other})

    [error] = response.context["confirm_form"].errors["fingerprint"]
    assert other.split()[1] in error and target_host.host_key_fingerprint in error
    assert "intercepting" in error and "do not confirm" in error
    host.refresh_from_db()
    assert not host.host_key_confirmed


def test_an_unconfirmed_host_is_not_tested(client, world, admin):
    client.force_login(admin)
    response = client.post(reverse("certificates:host_test", args=[world["host"].pk]),
                           follow=True)
    assert "Confirm the host key first" in response.content.decode()


def test_adding_a_host_reports_bad_paths_by_field(client, world, admin, tmp_path):
    from certificates.tests.pki import ssh_keypair

    login_key, _ = ssh_keypair(tmp_path, "new-host")
    client.force_login(admin)
    response = client.post(reverse("certificates:host_create"), {
        "name": "web9", "address": "127.0.0.9", "ssh_port": 22, "ssh_user": "root",
        "login_key": login_key, "private_key_path": "relative/site.key",
        "certificate_path": "/etc/ssl/site.crt", "backup_dir": "/var/backups",
        "key_mode": "0600", "cert_mode": "0644", "config_test_command": "nginx -t",
        "reload_command": "nginx -s reload", "tls_check_port": 443, "backups_to_keep": 5,
    })
    assert response.status_code == 200
    assert list(response.context["form"].errors) == ["private_key_path"]
    assert "BEGIN OPENSSH" not in response.content.decode()


def test_an_administrator_adds_and_edits_a_ca_account_keeping_its_eab_key(
        client, world, admin, operator, pebble_factory, settings):
    # The settings are checked with the CA on save: one that knows the EAB key.
    ca = pebble_factory(eab_keys={"kid-9": "c2VjcmV0LWhtYWMta2V5LWZvci1lYWItOTg3NjU0"},
                        nonce_reject=None)
    settings.ACME_CA_BUNDLE = str(ca.ca_bundle)
    client.force_login(admin)
    fields = {"name": "Commercial CA", "directory_url": ca.directory_url,
              "contact_email": "ops@example.test", "eab_kid": "kid-9",
              "eab_hmac_key": "c2VjcmV0LWhtYWMta2V5LWZvci1lYWItOTg3NjU0", "price": "990",
              "currency": "JPY", "low_balance_threshold": "10000"}
    response = client.post(reverse("certificates:ca_account_create"), fields)
    from certificates.models import CAAccount

    account = CAAccount.objects.get(name="Commercial CA")
    assert response["Location"] == reverse("certificates:ca_account", args=[account.pk])
    html = page(client, "certificates:ca_account_edit", account.pk)
    assert fields["eab_hmac_key"] not in html
    client.post(reverse("certificates:ca_account_edit", args=[account.pk]),
                {**fields, "eab_hmac_key": "", "price": "-1"})
    account.refresh_from_db()
    assert account.price == Decimal("990")  # refused: a negative price
    client.post(reverse("certificates:ca_account_edit", args=[account.pk]),
                {**fields, "eab_hmac_key": "", "price": "1200"})
    account.refresh_from_db()
    assert account.price == Decimal("1200") and account.eab_hmac_key == fields["eab_hmac_key"]
    client.force_login(operator)
    assert client.get(reverse("certificates:ca_account_edit", args=[account.pk])
                      ).status_code == 403
