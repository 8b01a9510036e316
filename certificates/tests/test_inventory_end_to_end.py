"""The inventory against the real testbed: an nginx host's certificate found by
scanning its address and port and by reading its files over SSH, accepted,
adopted and renewed through Pebble, the endpoint then serving the new leaf and
its history showing the change; expiry and verification alerts told once;
checks run by a real Celery beat and worker."""

import datetime
import hashlib
import subprocess
from decimal import Decimal

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from django.core import mail
from django.utils import timezone

from api.models import Webhook, WebhookDelivery
from certificates import renewal
from certificates.inventory import discovery, discovery_runs, monitoring
from certificates.models import (
    Certificate,
    EndpointCheck,
    InventoryCertificate,
    MonitoredEndpoint,
    Notification,
)

from . import pki
from .factories import ca_account, portal_host
from .waiting import wait_for


@pytest.fixture
def trusted_pebble(pebble, settings, tmp_path):
    """Pebble's root trusted by the checks, as an organisation's private CA."""
    roots = tmp_path / "extra-roots.pem"
    roots.write_text(pebble.root_pem())
    settings.INVENTORY_EXTRA_ROOTS = str(roots)
    settings.ACME_CA_BUNDLE = str(pebble.ca_bundle)
    return pebble


def install(target_host, key_pem: str, chain_pem: str) -> str:
    """Puts a certificate on the testbed's nginx by hand, as an administrator
    would, and reloads; the served leaf's fingerprint."""
    target_host.private_key_path.write_text(key_pem)
    target_host.fullchain_path.write_text(chain_pem)
    subprocess.run(target_host.reload_command, shell=True, check=True)
    der = x509.load_pem_x509_certificates(chain_pem.encode())[0].public_bytes(Encoding.DER)
    sha = hashlib.sha256(der).hexdigest()
    target_host.wait_for_served_leaf(sha)
    return sha


def test_a_served_certificate_is_discovered_accepted_adopted_renewed_and_seen_to_change(
        organization, owner, client, target_host, trusted_pebble, settings):
    settings.DISCOVERY_PORTS = [target_host.tls_port]
    settings.DEPLOY_TLS_GRACE_SECONDS = 10
    host = portal_host(organization, target_host)
    served = target_host.served_leaf_sha256()

    found = discovery.scan(organization, targets_text=target_host.address,
                           names=[target_host.sni_name])
    assert found.served >= 1
    row = InventoryCertificate.objects.get(fingerprint_sha256=served)
    assert row.status == InventoryCertificate.Status.FOUND
    # Reading the host's files is a discovery of its own, run here as a worker would.
    by_files = discovery_runs.start(organization, by=owner, host=host,
                                    paths=[str(target_host.fullchain_path.parent)])
    discovery_runs.run(by_files.pk)
    by_files.refresh_from_db()
    assert by_files.status == "done" and by_files.checked == by_files.total >= 2
    assert row in by_files.findings.all()
    row.refresh_from_db()
    # One finding, seen at the endpoint and in the host's file.
    assert InventoryCertificate.objects.filter(fingerprint_sha256=served).count() == 1
    assert {"address": target_host.address, "port": target_host.tls_port,
            "sni": target_host.sni_name} in row.seen_at
    assert any(place.get("path") == str(target_host.fullchain_path) for place in row.seen_at)

    assert discovery.accept([row]) == 1
    endpoint = MonitoredEndpoint.objects.get(address=target_host.address,
                                             port=target_host.tls_port,
                                             sni_name=target_host.sni_name)
    first = monitoring.check(endpoint.pk)
    assert first.fingerprint_sha256 == served and first.result == "problem"  # self-signed

    ca = ca_account(organization, directory_url=trusted_pebble.directory_url, price=Decimal("0"))
    client.force_login(owner)
    response = client.post(f"/inventory/{row.pk}/adopt/", {
        "common_name": row.common_name, "sans": "", "ca_account": ca.pk,
        "key_type": "ec-p256", "challenge": "http-01", "hosts": [host.pk],
        "auto_renew": "on"})
    assert response.status_code == 302, response.content.decode()[:3000]
    certificate = Certificate.objects.get(organization=organization,
                                          common_name=row.common_name)
    old = certificate.current_version
    assert old.fingerprint_sha256 == served
    assert certificate.renew_after is not None and certificate.renew_after < old.not_after
    row.refresh_from_db()
    assert row.adopted_as == certificate

    run = renewal.run_inline(certificate_id=certificate.pk, requested_by=owner, force=True)
    assert run.status == "succeeded", (run.error, list(run.steps.values("name", "detail")))
    certificate.refresh_from_db()
    assert certificate.current_version != old
    assert set(certificate.versions.values_list("pk", flat=True)) >= {old.pk}
    new = certificate.current_version.fingerprint_sha256
    target_host.wait_for_served_leaf(new)

    second = monitoring.check(endpoint.pk)
    assert second.fingerprint_sha256 == new and second.changed
    assert second.result == "ok", second.problems
    history = list(endpoint.checks.values_list("fingerprint_sha256", "changed"))
    assert history == [(new, True), (served, False)]
    endpoint.refresh_from_db()
    assert endpoint.managed_certificate == certificate
    page = client.get(f"/endpoints/{endpoint.pk}/").content.decode()
    assert new[:17] in page and served[:17] in page


def test_an_endpoint_near_expiry_alerts_once_by_mail_and_webhook(
        organization, owner_with_mail, target_host, trusted_pebble,
        django_capture_on_commit_callbacks):
    ca_key, key = pki.private_key(), pki.private_key()
    ca = pki.issue("Shop CA", ca_key.public_key(), ca_key, ca=True, days=3650,
                   backdated=datetime.timedelta(minutes=5))
    leaf = pki.issue(target_host.sni_name, key.public_key(), ca_key, issuer="Shop CA", ca=False,
                     names=[target_host.sni_name], days=5,
                     backdated=datetime.timedelta(minutes=5))
    install(target_host, pki.key_pem(key), pki.cert_pem(leaf) + pki.cert_pem(ca))
    Webhook.objects.create(organization=organization, url="https://hooks.example.test/",
                           secret="s" * 20, events=["endpoint.expiring"])
    endpoint = monitoring.watch(organization, address=target_host.address,
                                port=target_host.tls_port, sni_name=target_host.sni_name)

    for _ in range(2):
        with django_capture_on_commit_callbacks(execute=True):
            monitoring.check(endpoint.pk)
    told = Notification.objects.filter(kind="endpoint_expiring", endpoint=endpoint)
    assert told.count() == 1 and told.get().sent_at
    assert WebhookDelivery.objects.filter(event="endpoint.expiring").count() == 1
    [message] = [m for m in mail.outbox if "expires within" in m.subject]
    assert message.to == [owner_with_mail.email] and "expires within 4 days" in message.subject


def test_a_chain_that_does_not_verify_is_reported_with_the_reason(
        organization, owner_with_mail, client, target_host, trusted_pebble,
        django_capture_on_commit_callbacks):
    endpoint = monitoring.watch(organization, address=target_host.address,
                                port=target_host.tls_port, sni_name="other.example.test")
    with django_capture_on_commit_callbacks(execute=True):
        check = monitoring.check(endpoint.pk)
    codes = {problem["code"] for problem in check.problems}
    assert check.result == "problem" and {"untrusted", "name"} <= codes
    untrusted = next(p for p in check.problems if p["code"] == "untrusted")
    assert untrusted["params"]["reason"]
    client.force_login(owner_with_mail)
    page = client.get(f"/endpoints/{endpoint.pk}/", HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert "does not lead to a trusted root" in page
    assert "not valid for the name other.example.test" in page
    assert Notification.objects.filter(kind="endpoint_problem", endpoint=endpoint).exists()


def test_an_address_outside_the_policy_is_refused_naming_it(organization, settings):
    settings.OUTBOUND_ALLOW = []
    from django.core.exceptions import ValidationError

    with pytest.raises(ValidationError) as refused:
        monitoring.watch(organization, address="127.0.0.1", port=443)
    assert "127.0.0.1" in str(refused.value.message_dict["address"])
    with pytest.raises(ValidationError) as scan:
        discovery.scan(organization, targets_text="127.0.0.1", ports_text="443")
    assert "127.0.0.1" in str(scan.value.message_dict["targets"])
    settings.DISCOVERY_MAX_ADDRESSES = 16
    with pytest.raises(ValidationError) as wide:
        discovery.scan(organization, targets_text="192.0.2.0/24", ports_text="443")
    assert "192.0.2.0/24 holds 256 addresses" in str(wide.value.message_dict["targets"])
    with pytest.raises(ValidationError) as port:
        discovery.scan(organization, targets_text="192.0.2.1", ports_text="22")
    assert "22" in str(port.value.message_dict["ports"])
    assert not MonitoredEndpoint.objects.exists() and not EndpointCheck.objects.exists()


def test_beat_and_a_worker_check_due_endpoints_on_their_own(
        celery_processes, organization, target_host):
    endpoint = MonitoredEndpoint.objects.create(
        organization=organization, address=target_host.address, port=target_host.tls_port,
        sni_name=target_host.sni_name, next_check_at=timezone.now())
    worker = celery_processes.worker()
    beat = celery_processes.beat(ENDPOINT_SCAN_SECONDS=1)
    wait_for(EndpointCheck.objects.filter(endpoint=endpoint).exists, 60, "a scheduled check",
             worker, beat)
    endpoint.refresh_from_db()
    assert endpoint.served_fingerprint == target_host.served_leaf_sha256()
    assert endpoint.next_check_at > timezone.now()
