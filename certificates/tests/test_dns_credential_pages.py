"""The DNS credential pages: a provider's own fields drawn from lexicon, the
test button's steps, and who may do what."""

import pytest
from django.contrib.messages import get_messages
from django.urls import reverse

from certificates.models import DNSCredential, DNSKind
from certificates.tests.factories import bind_credential

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def english(client):
    client.defaults["HTTP_ACCEPT_LANGUAGE"] = "en"


def test_an_administrator_adds_a_powerdns_credential_with_its_own_fields_and_tests_it(
        client, owner, bind_dns, powerdns):
    client.force_login(owner)
    base = {"name": "PowerDNS", "kind": "lexicon", "zones": "example.net", "port": 53,
            "tsig_algorithm": "hmac-sha256", "provider": "powerdns"}

    drawn = client.post(reverse("certificates:dns_credential_create"),
                        {**base, "show_provider": "1"})

    html = drawn.content.decode()
    assert 'name="option_pdns_server"' in html and 'name="option_auth_token"' in html
    assert 'type="password" name="option_auth_token"' in html
    assert not DNSCredential.objects.exists()
    saved = client.post(reverse("certificates:dns_credential_create"), {
        **base, "option_pdns_server": powerdns.api_url, "option_auth_token": powerdns.api_key})
    assert saved.status_code == 302, saved.context["form"].errors
    credential = DNSCredential.objects.get()
    assert (credential.kind, credential.provider, credential.options) == (
        DNSKind.LEXICON, "powerdns", {"pdns_server": powerdns.api_url})
    assert credential.secret_values == {"auth_token": powerdns.api_key}
    assert powerdns.api_key not in client.get(
        reverse("certificates:dns_credential_edit", args=[credential.pk])).content.decode()

    tested = client.post(reverse("certificates:dns_credential_test", args=[credential.pk]))

    said = [(m.level_tag, m.message) for m in get_messages(tested.wsgi_request)]
    assert [tag for tag, _text in said][-3:] == ["success"] * 3, said
    assert "ns1.example.net (127.0.1.1) after" in said[-2][1]


def test_a_provider_url_change_asks_for_its_token_again(client, owner, organization,
                                                        bind_dns, powerdns):
    from certificates.tests.factories import powerdns_credential

    credential = powerdns_credential(organization, powerdns)
    client.force_login(owner)
    data = {"name": "PowerDNS", "kind": "lexicon", "zones": "example.net", "port": 53,
            "tsig_algorithm": "hmac-sha256", "provider": "powerdns",
            "option_pdns_server": "https://dns.example.org"}

    response = client.post(reverse("certificates:dns_credential_edit", args=[credential.pk]),
                           data)

    assert response.status_code == 200
    assert "enter the secret again" in " ".join(response.context["form"].non_field_errors())
    credential.refresh_from_db()
    assert credential.options == {"pdns_server": powerdns.api_url}


def test_operators_see_credentials_and_choose_them_but_cannot_add_or_test(
        client, operator, organization, bind_dns):
    credential = bind_credential(organization, bind_dns)
    client.force_login(operator)

    listed = client.get(reverse("certificates:dns_credentials")).content.decode()

    assert credential.name in listed and "add-dns-credential" not in listed
    assert client.get(reverse("certificates:dns_credential_create")).status_code == 403
    assert client.post(reverse("certificates:dns_credential_test",
                               args=[credential.pk])).status_code == 403
    form = client.get(reverse("certificates:certificate_create")).content.decode()
    assert f'value="{credential.pk}"' in form


def test_the_certificate_page_shows_each_names_chain_and_credential(
        client, owner, organization, bind_dns, powerdns):
    from certificates.tests.factories import ca_account, dns01_certificate, powerdns_credential

    both = [bind_credential(organization, bind_dns), powerdns_credential(organization, powerdns)]
    cert = dns01_certificate(organization, ca_account(organization), bind_dns,
                             ["*.delegated.example.test", "nowhere.example.org"],
                             credentials=both)
    client.force_login(owner)

    html = client.get(reverse("certificates:certificate", args=[cert.pk]),
                      {"chains": "1"}).content.decode()

    assert ("_acme-challenge.delegated.example.test → _acme-challenge.delegated.example.net "
            "(PowerDNS)") in html
    assert "nowhere.example.org" in html


def test_fixing_a_credential_retries_its_failing_certificates_now(client, owner, organization,
                                                                  bind_dns):
    from datetime import timedelta

    from django.utils import timezone

    from certificates.models import Certificate
    from certificates.tests.factories import ca_account, dns01_certificate

    credential = bind_credential(organization, bind_dns, secret="d3Jvbmctc2VjcmV0LXZhbHVlLTEyMzQ=")
    cert = dns01_certificate(organization, ca_account(organization), bind_dns,
                             ["*.h15.example.test"], credentials=[credential])
    later = timezone.now() + timedelta(days=1)
    Certificate.objects.filter(pk=cert.pk).update(failure_count=1, next_attempt_at=later)
    client.force_login(owner)

    response = client.post(reverse("certificates:dns_credential_edit", args=[credential.pk]), {
        "name": "BIND", "kind": "rfc2136", "zones": "example.test", "server": bind_dns.address,
        "port": bind_dns.port, "tsig_key_name": bind_dns.tsig_key_name,
        "tsig_algorithm": bind_dns.tsig_algorithm, "tsig_secret": bind_dns.tsig_secret})

    assert response.status_code == 302, response.context["form"].errors
    assert Certificate.objects.get(pk=cert.pk).next_attempt_at < later
