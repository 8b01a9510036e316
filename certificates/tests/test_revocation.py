"""Revoking a version at the CA, against Pebble and an sshd + nginx host: never
while a host serves it unless a key compromise forces it, signed by the
account's key or, the account gone, by the certificate's own."""

import pytest

from certificates import renewal
from certificates.models import AuditEvent, CAAccount, CertificateVersion, RevocationReason
from certificates.renewal import revocation
from certificates.seams import acme
from certificates.tests.factories import ca_account, http01_certificate, portal_host

pytestmark = pytest.mark.django_db


@pytest.fixture
def served(organization, pebble, target_host, settings):
    """A certificate issued by Pebble and served by the testbed host."""
    settings.ACME_CA_BUNDLE = str(pebble.ca_bundle)
    settings.DEPLOY_TLS_GRACE_SECONDS = 10
    ca = ca_account(organization, directory_url=pebble.directory_url, price=0)
    host = portal_host(organization, target_host)
    cert = http01_certificate(organization, ca, host, [target_host.name])
    run = renewal.run_inline(certificate_id=cert.pk)
    assert run.status == "succeeded", (run.error, list(run.steps.values()))
    cert.refresh_from_db()
    return cert


def status_at(pebble, version):
    return pebble.cert_status(version.serial_hex)["Status"]


def test_a_served_version_is_revoked_only_after_its_replacement_is_served(
    served, pebble, admin, target_host
):
    first = served.current_version
    with pytest.raises(revocation.StillServed) as refused:
        revocation.revoke_version(version_id=first.pk, by=admin)
    assert target_host.name in str(refused.value)
    assert status_at(pebble, first) == "Valid"

    replaced = renewal.run_inline(certificate_id=served.pk, force=True)
    assert replaced.status == "succeeded", replaced.error
    done = revocation.revoke_version(version_id=first.pk, by=admin,
                                     reason=RevocationReason.SUPERSEDED)

    assert done.signed_by == "account" and done.replacement is None
    assert status_at(pebble, first) == "Revoked"
    assert status_at(pebble, replaced.version) == "Valid"
    first.refresh_from_db()
    assert first.revoked_at is not None and first.revoked_by == admin
    assert first.revocation_reason == RevocationReason.SUPERSEDED
    event = AuditEvent.objects.get(action=AuditEvent.Action.CERTIFICATE_REVOKED)
    assert event.params["serial"] == first.serial_hex and event.params["forced"] is False
    with pytest.raises(revocation.AlreadyRevoked):
        revocation.revoke_version(version_id=first.pk, by=admin)


def test_a_key_compromise_forces_it_and_starts_the_replacement_at_once(served, pebble, admin):
    version = served.current_version
    with pytest.raises(revocation.RevocationRefused):
        revocation.revoke_version(version_id=version.pk, by=admin, force=True,
                                  reason=RevocationReason.SUPERSEDED)

    done = revocation.revoke_version(version_id=version.pk, by=admin, force=True,
                                     reason=RevocationReason.KEY_COMPROMISE)

    assert status_at(pebble, version) == "Revoked"
    assert done.replacement is not None and done.replacement.is_open
    assert done.replacement.intent == "issue"
    event = AuditEvent.objects.get(action=AuditEvent.Action.CERTIFICATE_REVOKED)
    assert event.params["forced"] is True
    assert event.params["replacement_run"] == done.replacement.pk


def test_the_certificates_own_key_signs_when_the_account_is_gone(served, pebble, admin):
    version = served.current_version
    # Another key, an account URL the CA never gave out: the ordering account is gone.
    CAAccount.objects.filter(pk=served.ca_account_id).update(
        account_key=acme.new_account_key(),
        account_url=served.ca_account.account_url + "-gone")
    # A key made on the server by an agent never reaches the portal.
    CertificateVersion.objects.filter(pk=version.pk).update(private_key="")
    with pytest.raises(revocation.RevocationFailed) as refused:
        revocation.revoke_version(version_id=version.pk, by=admin, force=True,
                                  reason=RevocationReason.KEY_COMPROMISE)
    assert "only the account can sign" in str(refused.value)
    assert status_at(pebble, version) == "Valid"

    CertificateVersion.objects.filter(pk=version.pk).update(private_key=version.private_key)
    done = revocation.revoke_version(version_id=version.pk, by=admin, force=True,
                                     reason=RevocationReason.KEY_COMPROMISE)

    assert done.signed_by == "certificate"
    assert status_at(pebble, version) == "Revoked"


def test_people_revoke_through_the_page_the_api_and_manage_py(
    served, pebble, admin, operator, client
):
    from django.core.management import CommandError, call_command
    from django.urls import reverse

    from accounts.tests.factors import reauthenticate
    from api.tests.conftest import client_for, make_token

    version = served.current_version
    page = reverse("certificates:revoke_version", args=[served.pk, version.pk])
    client.force_login(operator)
    assert client.get(page).status_code == 403
    client.force_login(admin)
    shown = client.get(page)
    assert shown.status_code == 200 and "revoke-served" in shown.content.decode()
    asked = client.post(page, {"confirm": "1", "reason": "4"})
    assert asked.status_code == 302 and "reauthenticate" in asked["Location"]
    reauthenticate(client, admin)
    refused = client.post(page, {"confirm": "1", "reason": "4"})
    assert refused.status_code == 409 and "Still served" in refused.content.decode()
    assert status_at(pebble, version) == "Valid"

    _token, raw = make_token(admin)
    api = client_for(raw)
    url = f"/api/v1/certificates/{served.pk}/revoke/"
    assert api.post(url, {"reason": "superseded"}, format="json").status_code == 409
    answer = api.post(url, {"reason": "keyCompromise", "force": True}, format="json")
    assert answer.status_code == 200, answer.content
    assert answer.json()["replacement_run"] is not None
    assert status_at(pebble, version) == "Revoked"

    versions = api.get(f"/api/v1/certificates/{served.pk}/versions/").json()["results"]
    assert versions[0]["revoked_at"] and versions[0]["revocation_reason"] == 1
    assert api.get(f"/api/v1/certificates/{served.pk}/").json()["current_version_revoked_at"]
    detail = client.get(reverse("certificates:certificate", args=[served.pk])).content.decode()
    assert "current-revoked" in detail
    listing = client.get(reverse("certificates:certificates")).content.decode()
    assert "badge bad" in listing
    audit = client.get(reverse("certificates:audit")).content.decode()
    assert "<td>Certificate version revoked</td>" in audit
    with pytest.raises(CommandError, match="revoked already"):
        call_command("revoke", str(served.pk))
