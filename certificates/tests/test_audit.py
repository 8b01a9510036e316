"""The audit log: every change that matters is recorded, with who, what and
from where (the proxy's word only when the operator trusts it), and the
organisation's administrators read, filter and export it."""

import csv
import io
import re

import pytest
from django.core import mail
from django.test import RequestFactory
from django.urls import reverse
from rest_framework.test import APIClient

from accounts.models import Membership, Role
from accounts.tests.factors import give_totp, reauthenticate
from api.models import APIToken, Webhook
from certificates.models import (
    AgentCredential,
    AuditEvent,
    CAAccount,
    Certificate,
    DNSCredential,
    InventoryCertificate,
    NotificationChannel,
    TargetHost,
)
from certificates.models.audit import client_address
from certificates.tests.factories import agent_host
from certificates.tests.pki import self_signed, ssh_keypair

pytestmark = pytest.mark.django_db

# Recorded by parts of the portal not exercised here: sign-in factors, forced
# renewal, revocation (it needs a CA: test_revocation.py checks its entry) and
# incidents (test_incidents.py checks theirs).
ELSEWHERE = {AuditEvent.Action.MFA_CHANGED, AuditEvent.Action.RENEWAL_FORCED,
             AuditEvent.Action.CERTIFICATE_REVOKED, AuditEvent.Action.INCIDENT_STARTED,
             AuditEvent.Action.INCIDENT_PAUSED, AuditEvent.Action.INCIDENT_RESUMED}
# Moving certificates to a fallback CA: certificates/tests/test_ca_fallback.py.
ELSEWHERE |= {AuditEvent.Action.CA_MOVED_AWAY, AuditEvent.Action.CA_FALLBACK_USED}


@pytest.fixture(autouse=True)
def english(client):
    client.defaults["HTTP_ACCEPT_LANGUAGE"] = "en"


# -- the client address ----------------------------------------------------------------


def _request(**meta):
    return RequestFactory().get("/", **meta)


def test_without_a_trusted_header_the_connecting_address_is_recorded(settings):
    settings.AUDIT_TRUSTED_PROXY_HEADER = ""
    request = _request(REMOTE_ADDR="10.0.0.5", HTTP_X_FORWARDED_FOR="198.51.100.66")
    assert client_address(request) == "10.0.0.5"


def test_with_a_trusted_header_the_address_the_proxy_appended_is_recorded(settings):
    settings.AUDIT_TRUSTED_PROXY_HEADER = "HTTP_X_FORWARDED_FOR"
    settings.AUDIT_TRUSTED_PROXY_COUNT = 1
    # The client wrote the left-most entry itself; only the proxy's own is believed.
    request = _request(REMOTE_ADDR="10.0.0.5",
                       HTTP_X_FORWARDED_FOR="198.51.100.66, 203.0.113.9")
    assert client_address(request) == "203.0.113.9"
    settings.AUDIT_TRUSTED_PROXY_COUNT = 2
    request = _request(REMOTE_ADDR="10.0.0.5",
                       HTTP_X_FORWARDED_FOR="198.51.100.66, 203.0.113.9, 10.0.0.4")
    assert client_address(request) == "203.0.113.9"


def test_a_spoofed_forwarded_address_is_not_what_the_event_records(client, world, admin,
                                                                   settings):
    settings.AUDIT_TRUSTED_PROXY_HEADER = "HTTP_X_FORWARDED_FOR"
    client.force_login(admin)
    client.post(reverse("certificates:top_up", args=[world["ca_account"].pk]),
                {"amount": "1000", "note": ""}, REMOTE_ADDR="10.0.0.5",
                HTTP_X_FORWARDED_FOR="198.51.100.66, 203.0.113.9")
    assert AuditEvent.objects.get().ip_address == "203.0.113.9"


# -- every audited action, done for real, is on the page -------------------------------


def _host_form(login_key, **changes):
    fields = dict(name="web9", address="127.0.0.9", ssh_port=22, ssh_user="deploy",
                  login_key=login_key, private_key_path="/etc/ssl/private/site.key",
                  certificate_path="/etc/ssl/site.crt", backup_dir="/var/backups/certs",
                  key_mode="0600", cert_mode="0644", tls_check_port=443, backups_to_keep=5,
                  config_test_command="nginx -t", reload_command="nginx -s reload")
    return {**fields, **changes}


# A CA that takes both EAB keys the actions use: a CA account's settings are
# checked with the CA when saved.
EAB_KEYS = {"kid-1": "c2VjcmV0LWhtYWMta2V5LWZvci1lYWItMTIzNDU2",
            "kid-2": "bmV3LWhtYWMta2V5LXZhbHVl"}


@pytest.fixture(scope="module")
def eab_ca(pebble_factory):
    return pebble_factory(eab_keys=EAB_KEYS, nonce_reject=None)


@pytest.fixture
def ca_directory(eab_ca, settings):
    settings.ACME_CA_BUNDLE = str(eab_ca.ca_bundle)
    return eab_ca.directory_url


def _do_every_action(client, world, owner, django_user_model, tmp_path, ca_directory):
    """Each audited action through the pages and the API, as people do them."""
    client.force_login(owner)
    reauthenticate(client, owner)  # setting a host's commands asks for the password again
    organization = world["certificate"].organization
    ca, cert, host = world["ca_account"], world["certificate"], world["host"]
    api = APIClient()
    api.force_login(owner)

    # People
    client.post(reverse("certificates:member_invite"),
                {"email": "new@example.test", "role": "operator", "language": "en"})
    client.post(reverse("certificates:member_invite"),
                {"email": "gone@example.test", "role": "viewer", "language": "en"})
    token = re.search(r"/invitations/([^/\s]+)/", mail.outbox[0].body).group(1)
    revoked = organization.invitations.get(email="gone@example.test")
    client.post(reverse("certificates:invitation_revoke", args=[revoked.pk]))
    newcomer_client = type(client)(HTTP_ACCEPT_LANGUAGE="en")
    newcomer_client.post(reverse("certificates:invitation_accept", args=[token]), {
        "username": "newcomer", "password1": "Kiri-no-mori-77",
        "password2": "Kiri-no-mori-77"})
    membership = Membership.objects.get(user__username="newcomer")
    client.post(reverse("certificates:member_role", args=[membership.pk]), {"role": "admin"})
    client.post(reverse("certificates:member_remove", args=[membership.pk]))
    client.post(reverse("certificates:organization_settings"),
                {"name": "Renamed", "time_zone": "Europe/Berlin"})

    # Hosts
    login_key, _public = ssh_keypair(tmp_path, "audit-host")
    response = client.post(reverse("certificates:host_create"), _host_form(login_key))
    assert response.status_code == 302, response.context["form"].errors
    new_host = TargetHost.objects.get(name="web9")
    client.post(reverse("certificates:host_edit", args=[new_host.pk]),
                _host_form("", reload_command="systemctl reload nginx"))
    client.post(reverse("certificates:host_key_confirm", args=[host.pk]),
                {"fingerprint": host.host_key_fingerprint})
    assert api.delete(f"/api/v1/hosts/{new_host.pk}/").status_code == 204
    agent = agent_host(host.organization, name="agent9")
    client.post(reverse("certificates:agent_code", args=[agent.pk]))
    AgentCredential.issue(agent)  # as its enrolment makes it
    client.post(reverse("certificates:agent_revoke", args=[agent.pk]))

    # Own settings
    client.post(reverse("certificates:profile"), {
        "email": owner.email or "owner@example.test", "language": "en", "time_zone": "UTC",
        "alerts": ["renewal_failed"]})

    # Notification channels
    channel_form = {"name": "ops", "url": "json://127.0.0.1:9/hook", "kinds": ["expiring"],
                    "language": "en", "enabled": "on"}
    client.post(reverse("certificates:channel_create"), channel_form)
    channel = NotificationChannel.objects.get(name="ops")
    client.post(reverse("certificates:channel_edit", args=[channel.pk]),
                {**channel_form, "url": "", "kinds": ["expiring", "renewal_failed"]})
    client.post(reverse("certificates:channel_delete", args=[channel.pk]))

    # CA accounts and money
    ca_fields = dict(name="Second CA", directory_url=ca_directory,
                     contact_email="ops@example.test", eab_kid="kid-1",
                     eab_hmac_key=EAB_KEYS["kid-1"],
                     price="1100", currency="JPY", low_balance_threshold="0")
    response = client.post(reverse("certificates:ca_account_create"), ca_fields)
    assert response.status_code == 302, response.context["form"].errors
    second = CAAccount.objects.get(name="Second CA")
    client.post(reverse("certificates:ca_account_edit", args=[second.pk]),
                {**ca_fields, "eab_kid": "kid-2", "eab_hmac_key": EAB_KEYS["kid-2"]})
    client.post(reverse("certificates:top_up", args=[ca.pk]), {"amount": "10000", "note": ""})
    staff = django_user_model.objects.create_superuser("root", "root@example.test", "pw-root")
    Membership.objects.create(user=staff, organization=organization, role=Role.OWNER)
    give_totp(staff)
    client.force_login(staff)
    assert client.post(reverse("admin:certificates_caaccount_delete", args=[second.pk]),
                       {"post": "yes"}).status_code == 302
    client.force_login(owner)
    reauthenticate(client, owner)  # a key download asks for the password again

    # DNS credentials
    response = client.post(reverse("certificates:dns_credential_create"), {
        "name": "ns", "kind": "rfc2136", "zones": "example.test", "server": "192.0.2.53",
        "port": 53, "tsig_key_name": "k", "tsig_algorithm": "hmac-sha256",
        "tsig_secret": "dHNpZy1zZWNyZXQtdmFsdWUtMTIzNA=="})
    assert response.status_code == 302, response.context["form"].errors
    made = DNSCredential.objects.get(name="ns")
    assert api.patch(f"/api/v1/dns-credentials/{made.pk}/", {"zones": ["example.org"]},
                     format="json").status_code == 200
    assert api.delete(f"/api/v1/dns-credentials/{made.pk}/").status_code == 204

    # Certificates
    # The name is in no DNS here: confirmed past the page's warning.
    response = client.post(reverse("certificates:certificate_create"), {
        "common_name": "api.example.test", "sans": "", "ca_account": ca.pk,
        "key_type": "ec-p256", "challenge": "http-01", "auto_renew": "on",
        "acknowledge_warnings": "1"})
    assert response.status_code == 302, response.context["form"].errors
    made = Certificate.objects.get(common_name="api.example.test")
    response = client.post(reverse("certificates:certificate_edit", args=[made.pk]), {
        "common_name": "api.example.test", "sans": "", "ca_account": ca.pk,
        "key_type": "ec-p256", "challenge": "http-01"})
    assert response.status_code == 302, response.context["form"].errors
    client.post(reverse("certificates:certificate_archive", args=[made.pk]))
    assert api.post(f"/api/v1/certificates/{made.pk}/restore/").status_code == 200
    assert api.delete(f"/api/v1/certificates/{made.pk}/").status_code == 204
    client.post(reverse("certificates:download_key", args=[cert.pk]))

    # The inventory: an import, an adoption, a removal
    for name in ("adopted.example.test", "removed.example.test"):
        _key, leaf = self_signed(name)
        response = client.post(reverse("certificates:inventory_import"), {"pem": leaf})
        assert response.status_code == 302, response.content.decode()[:2000]
    adopted = InventoryCertificate.objects.get(common_name="adopted.example.test")
    response = client.post(reverse("certificates:inventory_adopt", args=[adopted.pk]), {
        "common_name": "adopted.example.test", "sans": "", "ca_account": ca.pk,
        "key_type": "ec-p256", "challenge": "http-01", "dns_port": 53, "auto_renew": "on"})
    assert response.status_code == 302, response.context["form"].errors
    removed = InventoryCertificate.objects.get(common_name="removed.example.test")
    client.post(reverse("certificates:inventory_remove", args=[removed.pk]))

    # Monitored endpoints and discovery
    response = api.post("/api/v1/endpoints/", {"address": "127.0.0.1", "port": 587,
                                               "protocol": "smtp"}, format="json")
    assert response.status_code == 201, response.json()
    client.post(reverse("certificates:endpoint_stop", args=[response.json()["id"]]))
    response = client.post(reverse("certificates:discovery"), {
        "scan": "1", "targets": "127.0.0.1", "ports": "443"})
    assert response.status_code == 302, response.context["scan_form"].errors

    # The API
    client.post(reverse("api:tokens"), {"name": "sync", "scopes": ["read"], "lifetime": 30})
    client.post(reverse("api:revoke-token", args=[APIToken.objects.get(name="sync").pk]))
    assert api.post("/api/v1/webhooks/", {
        "url": "https://hooks.example.test/portal", "secret": "a-long-enough-secret",
        "events": ["renewal.failed"]}, format="json").status_code == 201
    webhook = Webhook.objects.get()
    api.patch(f"/api/v1/webhooks/{webhook.pk}/", {"secret": "another-long-secret"},
              format="json")
    assert api.delete(f"/api/v1/webhooks/{webhook.pk}/").status_code == 204


def test_the_audit_page_lists_each_audited_action(client, world, owner, django_user_model,
                                                  tmp_path, ca_directory):
    _do_every_action(client, world, owner, django_user_model, tmp_path, ca_directory)
    expected = set(AuditEvent.Action) - ELSEWHERE
    assert set(AuditEvent.objects.values_list("action", flat=True)) == expected
    client.force_login(owner)
    html = client.get(reverse("certificates:audit")).content.decode()
    for action in expected:
        assert f"<td>{action.label}</td>" in html, action


def test_changes_name_the_fields_and_never_a_secret(client, world, owner, django_user_model,
                                                    tmp_path, ca_directory):
    _do_every_action(client, world, owner, django_user_model, tmp_path, ca_directory)
    events = AuditEvent.objects
    assert events.get(action=AuditEvent.Action.CA_ACCOUNT_CHANGED).params == {
        "fields": ["eab_kid", "eab_hmac_key"]}
    assert events.get(action=AuditEvent.Action.HOST_CHANGED).params["fields"] == [
        "reload_command"]
    assert events.get(action=AuditEvent.Action.WEBHOOK_CHANGED).params == {
        "fields": ["secret"], "via": "api"}
    assert events.get(action=AuditEvent.Action.ROLE_CHANGED).params == {
        "from_role": "operator", "to_role": "admin"}
    everything = str(list(events.values()))
    for secret in ("bmV3LWhtYWMta2V5LXZhbHVl", "another-long-secret", "a-long-enough-secret",
                   "PRIVATE KEY"):
        assert secret not in everything
    client.force_login(owner)
    html = client.get(reverse("certificates:audit")).content.decode()
    assert "fields changed: EAB key ID, EAB HMAC key" in html
    assert "fields changed: reload command" in html
    assert "role: Operator → Administrator" in html
    assert "amount: ¥10,000" in html


def test_a_top_up_and_a_host_key_confirmed_through_the_api_are_recorded(world, owner):
    api = APIClient()
    api.force_login(owner)
    ca, host = world["ca_account"], world["host"]
    assert api.post(f"/api/v1/ca-accounts/{ca.pk}/top-up/", {"amount": "2500", "note": ""},
                    format="json", REMOTE_ADDR="192.0.2.8").status_code == 201
    assert api.post(f"/api/v1/hosts/{host.pk}/confirm-host-key/",
                    {"fingerprint": host.host_key_fingerprint}, format="json").status_code == 200
    top_up, confirmed = AuditEvent.objects.order_by("pk")
    assert (top_up.action, top_up.user, top_up.ip_address, top_up.params) == (
        AuditEvent.Action.TOP_UP, owner, "192.0.2.8",
        {"amount": "2500.00", "currency": "JPY", "via": "api"})
    assert (confirmed.action, confirmed.subject, confirmed.params["fingerprint"]) == (
        AuditEvent.Action.HOST_KEY_CONFIRMED, host.name, host.host_key_fingerprint)


# -- who reads it, filters and export ----------------------------------------------------


def _event(organization, action, subject, user=None, **params):
    return AuditEvent.objects.create(organization=organization, action=action,
                                     subject=subject, user=user, params=params)


def test_only_administrators_and_owners_read_the_log(client, organization, owner, operator,
                                                     admin, outsider):
    _event(organization, AuditEvent.Action.HOST_CREATED, "web1")
    for person, status in ((owner, 200), (admin, 200), (operator, 403)):
        client.force_login(person)
        assert client.get(reverse("certificates:audit")).status_code == status
        shown = 'id="nav-audit"' in client.get(reverse("certificates:dashboard")).content.decode()
        assert shown == (status == 200)
    client.force_login(outsider)  # sees their own organisation's log, without Msen's
    response = client.get(reverse("certificates:audit"))
    assert response.status_code == 200 and "web1" not in response.content.decode()


def test_the_log_is_filtered_by_action_person_dates_and_subject(client, organization, owner,
                                                                admin):
    _event(organization, AuditEvent.Action.HOST_CREATED, "web1", owner)
    _event(organization, AuditEvent.Action.HOST_DELETED, "web2", admin)
    _event(organization, AuditEvent.Action.TOP_UP, "FujiSSL", owner, amount="5", currency="JPY")
    client.force_login(owner)

    def subjects(**query):
        response = client.get(reverse("certificates:audit"), query)
        assert response.status_code == 200
        return sorted(event.subject for event in response.context["page"])

    assert subjects(action="host_created") == ["web1"]
    assert subjects(person=admin.pk) == ["web2"]
    assert subjects(q="WEB") == ["web1", "web2"]
    assert subjects(since="2000-01-01", until="2999-12-31") == ["FujiSSL", "web1", "web2"]
    assert subjects(until="2000-01-01") == []
    bad = client.get(reverse("certificates:audit"), {"since": "yesterday"})
    assert bad.status_code == 400 and "since" in bad.context["form"].errors


def test_the_filtered_log_is_exported_as_csv_in_the_readers_language(client, organization,
                                                                     owner):
    _event(organization, AuditEvent.Action.TOP_UP, "FujiSSL", owner, amount="10000",
           currency="JPY")
    _event(organization, AuditEvent.Action.HOST_CREATED, "=cmd|' /C calc'!A0", owner)
    client.force_login(owner)
    response = client.get(reverse("certificates:audit"), {"format": "csv", "action": "top_up"})
    assert response["Content-Type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode()
                                       .lstrip("\ufeff"))))
    assert rows[0] == ["When", "Who", "Action", "Subject", "Details", "IP address"]
    assert [row[1:5] for row in rows[1:]] == [
        ["owner", "Deposit topped up", "FujiSSL", "amount: ¥10,000"]]
    everything = client.get(reverse("certificates:audit"), {"format": "csv"},
                            HTTP_ACCEPT_LANGUAGE="ja")
    text = b"".join(everything.streaming_content).decode()
    assert "デポジット" in text or "入金" in text
    assert "\"'=cmd|' /C calc'!A0\"" in text or "'=cmd|' /C calc'!A0" in text
