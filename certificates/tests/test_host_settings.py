"""Settings that decide what lands on a host, refused wherever they are changed
(the UI's forms and the API): certificates sharing fixed file paths, a key that
others may read, a stored secret carried to a new endpoint, and who may run a
host's commands through the connection test."""

import pytest
from django.urls import reverse
from rest_framework.test import APIClient

from certificates.models import CAAccount, Certificate, Deployment, TargetHost
from certificates.tests.factories import certificate, one_of_everything
from certificates.tests.pki import ssh_keypair

pytestmark = pytest.mark.django_db


@pytest.fixture
def world(organization, tmp_path):
    return one_of_everything(organization, tmp_path)


@pytest.fixture(autouse=True)
def english(client):
    client.defaults["HTTP_ACCEPT_LANGUAGE"] = "en"


@pytest.fixture
def api():
    def as_user(user):
        client = APIClient(HTTP_ACCEPT_LANGUAGE="en")
        client.force_authenticate(user)
        return client
    return as_user


def api_errors(response) -> dict:
    """{field: [messages]} from the API's error body."""
    errors = {}
    for error in response.data["errors"]:
        errors.setdefault(error.get("field"), []).append(error["message"])
    return errors


def certificate_data(cert, **changes):
    data = {"common_name": cert.common_name, "sans": "\n".join(cert.sans),
            "ca_account": cert.ca_account_id, "key_type": cert.key_type,
            "challenge": cert.challenge,
            "dns_credentials": list(cert.dns_credentials.values_list("pk", flat=True)),
            "auto_renew": "on", "hosts": list(cert.deployments.values_list("host_id", flat=True))}
    return {**data, **changes}


HOST_FIELDS = ["name", "address", "ssh_port", "ssh_user", "private_key_path",
               "certificate_path", "ca_bundle_path", "fullchain_path", "document_root",
               "backup_dir", "file_owner", "file_group", "key_mode", "cert_mode",
               "config_test_command", "reload_command", "tls_check_address", "tls_check_port",
               "tls_sni_name", "backups_to_keep"]


def host_data(target, **changes):
    return {**{name: getattr(target, name) for name in HOST_FIELDS}, "login_key": "",
            **changes}


def named_paths(target):
    for field in ("private_key_path", "certificate_path", "ca_bundle_path", "fullchain_path"):
        setattr(target, field, f"/etc/ssl/{{name}}.{field}")
    target.save()


# -- two certificates on a host with fixed file paths --------------------------------


def test_the_certificate_form_refuses_a_second_certificate_on_a_host_with_fixed_paths(
        client, world, owner):
    second = certificate(world["certificate"].organization, world["ca_account"],
                         common_name="two.example.test", sans=["two.example.test"])
    client.force_login(owner)

    response = client.post(reverse("certificates:certificate_edit", args=[second.pk]),
                           certificate_data(second, challenge="http-01",
                                            hosts=[world["host"].pk]))

    assert response.status_code == 200
    errors = response.context["form"].errors["hosts"]
    assert "{name}" in errors[0] and world["host"].name in errors[0]
    assert not second.deployments.exists()


def test_the_certificate_form_accepts_a_second_certificate_when_paths_have_name(
        client, world, owner):
    named_paths(world["host"])
    second = certificate(world["certificate"].organization, world["ca_account"],
                         common_name="two.example.test", sans=["two.example.test"])
    client.force_login(owner)

    response = client.post(reverse("certificates:certificate_edit", args=[second.pk]),
                           certificate_data(second, challenge="http-01",
                                            hosts=[world["host"].pk]))

    assert response.status_code == 302, response.context["form"].errors
    assert second.deployments.filter(host=world["host"]).exists()


def test_the_api_refuses_to_create_a_certificate_on_a_host_with_fixed_paths(
        api, world, operator, organization):
    response = api(operator).post("/api/v1/certificates/", {
        "organization": organization.pk, "ca_account": world["ca_account"].pk,
        "common_name": "two.example.test", "challenge": "http-01",
        "hosts": [world["host"].pk]}, format="json")

    assert response.status_code == 400, response.data
    assert "{name}" in str(api_errors(response)["hosts"])
    assert not Certificate.objects.filter(common_name="two.example.test").exists()


def test_the_api_refuses_to_bind_a_host_with_fixed_paths_to_a_second_certificate(
        api, world, operator):
    second = certificate(world["certificate"].organization, world["ca_account"],
                         common_name="two.example.test", sans=["two.example.test"])

    response = api(operator).patch(f"/api/v1/certificates/{second.pk}/",
                                   {"hosts": [world["host"].pk]}, format="json")

    assert response.status_code == 400, response.data
    assert "{name}" in str(api_errors(response)["hosts"])
    assert not second.deployments.exists()


def test_a_host_with_several_certificates_cannot_lose_name_from_its_paths(
        client, api, world, owner):
    target = world["host"]
    named_paths(target)
    second = certificate(world["certificate"].organization, world["ca_account"],
                         common_name="two.example.test", sans=["two.example.test"])
    Deployment.objects.create(certificate=second, host=target)
    client.force_login(owner)

    response = client.post(reverse("certificates:host_edit", args=[target.pk]),
                           host_data(target, private_key_path="/etc/ssl/site.key"))

    assert response.status_code == 200
    assert "{name}" in response.context["form"].errors["private_key_path"][0]
    answer = api(owner).patch(f"/api/v1/hosts/{target.pk}/",
                              {"private_key_path": "/etc/ssl/site.key"}, format="json")
    assert answer.status_code == 400 and "private_key_path" in api_errors(answer)
    target.refresh_from_db()
    assert target.private_key_path == "/etc/ssl/{name}.private_key_path"


# -- the private key's mode ---------------------------------------------------------


@pytest.mark.parametrize("mode", ["0644", "0640", "0604", "0660"])
def test_a_key_mode_that_lets_others_use_the_key_is_refused(client, api, world, owner, mode):
    target = world["host"]
    client.force_login(owner)

    response = client.post(reverse("certificates:host_edit", args=[target.pk]),
                           host_data(target, key_mode=mode))

    assert response.status_code == 200
    assert mode in response.context["form"].errors["key_mode"][0]
    answer = api(owner).patch(f"/api/v1/hosts/{target.pk}/", {"key_mode": mode},
                              format="json")
    assert answer.status_code == 400 and "0600" in str(api_errors(answer)["key_mode"])
    target.refresh_from_db()
    assert target.key_mode == "0600"


@pytest.mark.parametrize("mode", ["0600", "0400", "600"])
def test_an_owner_only_key_mode_is_accepted(api, world, owner, mode):
    answer = api(owner).patch(f"/api/v1/hosts/{world['host'].pk}/", {"key_mode": mode},
                              format="json")
    assert answer.status_code == 200, answer.data


def test_a_host_stored_with_a_loose_key_mode_is_still_shown(client, world, owner):
    TargetHost.objects.filter(pk=world["host"].pk).update(key_mode="0644")
    client.force_login(owner)
    assert client.get(reverse("certificates:host", args=[world["host"].pk])).status_code == 200


# -- a stored secret and its endpoint ---------------------------------------------------


def credential_data(credential, **changes):
    data = {"name": credential.name, "kind": credential.kind, "zones": "\n".join(credential.zones),
            "server": credential.server, "port": credential.port,
            "tsig_key_name": credential.tsig_key_name,
            "tsig_algorithm": credential.tsig_algorithm, "tsig_secret": "", "provider": ""}
    return {**data, **changes}


def test_a_new_dns_server_needs_the_tsig_secret_again_in_the_form(client, world, owner):
    credential = world["dns_credential"]
    secret = credential.secret_values["tsig_secret"]
    client.force_login(owner)

    response = client.post(reverse("certificates:dns_credential_edit", args=[credential.pk]),
                           credential_data(credential, server="192.0.2.53"))

    assert response.status_code == 200
    assert "enter the secret again" in response.context["form"].errors["tsig_secret"][0]
    credential.refresh_from_db()
    assert (credential.server, credential.secret_values["tsig_secret"]) == ("127.0.0.1", secret)


def test_a_new_dns_port_needs_the_tsig_secret_again_in_the_form(client, world, owner):
    credential = world["dns_credential"]
    client.force_login(owner)

    response = client.post(reverse("certificates:dns_credential_edit", args=[credential.pk]),
                           credential_data(credential, port=5353))

    assert "tsig_secret" in response.context["form"].errors


def test_a_new_dns_server_with_the_secret_given_again_is_saved(client, world, owner):
    credential = world["dns_credential"]
    client.force_login(owner)

    response = client.post(reverse("certificates:dns_credential_edit", args=[credential.pk]),
                           credential_data(credential, server="192.0.2.53",
                                           tsig_secret="bmV3LXNlY3JldC12YWx1ZS0xMjM0"))

    assert response.status_code == 302, response.context["form"].errors
    credential.refresh_from_db()
    assert (credential.server, credential.secret_values["tsig_secret"]) == (
        "192.0.2.53", "bmV3LXNlY3JldC12YWx1ZS0xMjM0")


def test_a_blank_secret_keeps_the_stored_one_in_the_form(client, world, owner):
    credential = world["dns_credential"]
    secret = credential.secret_values["tsig_secret"]
    client.force_login(owner)

    response = client.post(reverse("certificates:dns_credential_edit", args=[credential.pk]),
                           credential_data(credential, name="renamed"))

    assert response.status_code == 302, response.context["form"].errors
    credential.refresh_from_db()
    assert (credential.name, credential.secret_values["tsig_secret"]) == ("renamed", secret)


def test_a_new_dns_server_needs_the_tsig_secret_again_in_the_api(api, world, owner):
    credential = world["dns_credential"]
    url = f"/api/v1/dns-credentials/{credential.pk}/"

    response = api(owner).patch(url, {"server": "192.0.2.53"}, format="json")

    assert response.status_code == 400, response.data
    assert "enter the secret again" in str(api_errors(response)["secrets"])
    credential.refresh_from_db()
    assert credential.server == "127.0.0.1"
    ok = api(owner).patch(url, {"server": "192.0.2.53",
                                "secrets": {"tsig_secret": "bmV3LXNlY3JldC12YWx1ZS0xMjM0"}},
                          format="json")
    assert ok.status_code == 200, ok.data
    assert "secrets" not in ok.data and ok.data["has_secrets"] is True


def test_operators_see_dns_credentials_but_only_administrators_change_them(api, world,
                                                                           operator):
    credential = world["dns_credential"]

    listed = api(operator).get("/api/v1/dns-credentials/")
    changed = api(operator).patch(f"/api/v1/dns-credentials/{credential.pk}/",
                                  {"name": "mine"}, format="json")

    assert [c["id"] for c in listed.data["results"]] == [credential.pk]
    assert "secrets" not in listed.data["results"][0]
    assert changed.status_code == 403


def ca_data(account, **changes):
    data = {"name": account.name, "directory_url": account.directory_url,
            "contact_email": account.contact_email, "eab_kid": account.eab_kid,
            "eab_hmac_key": "", "price": account.price, "currency": account.currency,
            "low_balance_threshold": account.low_balance_threshold}
    return {**data, **changes}


def test_a_new_directory_url_needs_the_eab_key_again(client, world, owner):
    account = world["ca_account"]
    hmac = account.eab_hmac_key
    client.force_login(owner)

    response = client.post(reverse("certificates:ca_account_edit", args=[account.pk]),
                           ca_data(account, directory_url="https://acme.example.net/dir"))

    assert response.status_code == 200
    assert "EAB HMAC key" in response.context["form"].errors["eab_hmac_key"][0]
    account.refresh_from_db()
    assert account.directory_url != "https://acme.example.net/dir"
    assert account.eab_hmac_key == hmac


def test_other_changes_keep_the_stored_eab_key(client, world, owner):
    account = world["ca_account"]
    hmac = account.eab_hmac_key
    client.force_login(owner)

    response = client.post(reverse("certificates:ca_account_edit", args=[account.pk]),
                           ca_data(account, name="Renamed"))

    assert response.status_code == 302, response.context["form"].errors
    account = CAAccount.objects.get(pk=account.pk)
    assert (account.name, account.eab_hmac_key) == ("Renamed", hmac)


# -- the connection test runs the host's commands: administrators only -----------------


def test_an_operator_may_not_run_the_connection_test(client, api, world, operator):
    client.force_login(operator)

    response = client.post(reverse("certificates:host_test", args=[world["host"].pk]))

    assert response.status_code == 403
    page = client.get(reverse("certificates:host", args=[world["host"].pk])).content.decode()
    assert 'id="test-connection"' not in page
    answer = api(operator).post(f"/api/v1/hosts/{world['host'].pk}/test-connection/")
    assert answer.status_code == 403


def test_an_administrator_sees_the_connection_test(client, world, owner, tmp_path):
    target = world["host"]
    target.host_key = ssh_keypair(tmp_path, "pinned")[1]
    target.host_key_confirmed_at = target.created_at
    target.save()
    client.force_login(owner)
    page = client.get(reverse("certificates:host", args=[target.pk])).content.decode()
    assert 'id="test-connection"' in page



def test_a_certificate_already_sharing_a_host_can_still_be_edited(client, world, owner):
    # Bound before the check existed: an unrelated edit is not refused for it.
    second = certificate(world["certificate"].organization, world["ca_account"],
                         common_name="two.example.test", sans=["two.example.test"])
    Deployment.objects.create(certificate=second, host=world["host"])
    client.force_login(owner)

    response = client.post(reverse("certificates:certificate_edit", args=[second.pk]),
                           certificate_data(second, challenge="http-01", auto_renew=""))

    assert response.status_code == 302, response.context["form"].errors
    second.refresh_from_db()
    assert second.auto_renew is False and second.deployments.exists()


def test_a_new_webhook_url_needs_the_signing_secret_again(api, owner, organization):
    from api.models import Webhook

    webhook = Webhook.objects.create(organization=organization, url="https://hooks.example.test/a",
                                     secret="a-long-enough-secret", events=["deposit.low"])
    url = f"/api/v1/webhooks/{webhook.pk}/"

    response = api(owner).patch(url, {"url": "https://hooks.example.net/b"}, format="json")

    assert response.status_code == 400, response.data
    assert "signing secret" in str(api_errors(response)["secret"])
    assert Webhook.objects.get(pk=webhook.pk).url == "https://hooks.example.test/a"
    ok = api(owner).patch(url, {"url": "https://hooks.example.net/b",
                                "secret": "another-long-secret"}, format="json")
    assert ok.status_code == 200, ok.data


def http01_on(organization, hosts, name="web.example.test", challenge="http-01"):
    from certificates.tests.factories import ca_account

    cert = certificate(organization, ca_account(organization), common_name=name, sans=[name],
                       challenge=challenge)
    for host in hosts:
        Deployment.objects.create(certificate=cert, host=host)
    return cert


def test_the_last_document_root_of_an_http01_certificate_cannot_be_taken_away(
        organization, tmp_path):
    from django.core.exceptions import ValidationError

    from certificates.tests.factories import host

    key = ssh_keypair(tmp_path)[0]
    only, other = host(organization, key, name="only"), host(organization, key, name="other")
    http01_on(organization, [only])
    http01_on(organization, [only], name="dns.example.test", challenge="dns-01")
    http01_on(organization, [only, other], name="both.example.test")

    only.document_root = ""
    with pytest.raises(ValidationError) as refused:
        only.full_clean()
    [message] = refused.value.message_dict["document_root"]
    # The certificate that would be left without a root is named; the DNS-01 one
    # and the one whose other host keeps a root are not.
    assert message.startswith("web.example.test proves its names over HTTP-01")
    TargetHost.objects.filter(pk=other.pk).update(document_root="")
    other.refresh_from_db()
    other.full_clean()  # "both" still has the root of "only"
