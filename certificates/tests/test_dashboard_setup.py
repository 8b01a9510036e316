"""An organisation without certificates sees the steps to its first one on the
dashboard, each ticked once done and linking to where it is done, and is not
offered "Add a certificate" before one could be issued."""

import pytest
from django.urls import reverse

from certificates.tests.factories import ca_account, certificate, dns_credential, host
from certificates.tests.pages import page
from certificates.tests.pki import ssh_keypair

pytestmark = pytest.mark.django_db


def _step(html, name):
    """The class (done/todo) and the markup of one step of the checklist."""
    start = html.index(f'id="setup-{name}"')
    item = html[html.rindex("<li", 0, start):html.index("</li>", start)]
    return ("done" if 'class="done"' in item else "todo"), item


def test_an_empty_organisation_gets_the_checklist_and_no_add_button(client, admin):
    client.force_login(admin)
    html = page(client, "certificates:dashboard")

    assert 'id="setup"' in html and 'id="dashboard-add-certificate"' not in html
    for name, where in (("ca-account", "certificates:ca_account_create"),
                        ("host", "certificates:host_create"),
                        ("dns-credential", "certificates:dns_credential_create")):
        state, item = _step(html, name)
        assert state == "todo" and f'href="{reverse(where)}"' in item, name
    # Not yet possible: named, not linked.
    state, item = _step(html, "certificate")
    assert state == "todo" and "href=" not in item
    assert "Possible once there is a CA account" in item


def test_each_step_is_ticked_when_done_and_the_certificate_is_offered_when_possible(
        client, organization, admin, tmp_path):
    ca_account(organization)
    client.force_login(admin)
    html = page(client, "certificates:dashboard")
    assert _step(html, "ca-account")[0] == "done"
    # Done steps lead to their lists.
    assert f'href="{reverse("certificates:ca_accounts")}"' in _step(html, "ca-account")[1]
    assert 'id="dashboard-add-certificate"' not in html  # nowhere to prove a name yet

    dns_credential(organization, server="127.0.0.1", tsig_key_name="portal-key",
                   secret_values={"tsig_secret": "dHNpZy1zZWNyZXQtdmFsdWUtMTIzNA=="})
    html = page(client, "certificates:dashboard")
    assert _step(html, "dns-credential")[0] == "done" and _step(html, "host")[0] == "todo"
    item = _step(html, "certificate")[1]
    assert f'href="{reverse("certificates:certificate_create")}"' in item
    assert 'id="dashboard-add-certificate"' in html

    host(organization, ssh_keypair(tmp_path, "setup")[0])
    assert _step(page(client, "certificates:dashboard"), "host")[0] == "done"


def test_with_a_certificate_the_checklist_gives_way_to_the_dashboard(client, organization,
                                                                     owner):
    certificate(organization, ca_account(organization))
    client.force_login(owner)
    html = page(client, "certificates:dashboard")
    assert 'id="setup"' not in html and 'id="dashboard-add-certificate"' in html


def test_a_viewer_is_told_who_adds_what(client, viewer):
    client.force_login(viewer)
    html = client.get(reverse("certificates:dashboard"),
                      HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert "are added by an administrator" in html
    assert reverse("certificates:ca_account_create") not in html


def test_the_checklist_in_japanese(client, admin):
    client.force_login(admin)
    html = client.get(reverse("certificates:dashboard"),
                      HTTP_ACCEPT_LANGUAGE="ja").content.decode()
    assert 'id="setup"' in html and "最初の証明書の準備" in html
    for english in ("Set up your first certificate", "Add a CA account", "To do:",
                    "Possible once there is"):
        assert english not in html, english
