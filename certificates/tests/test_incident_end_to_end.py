"""An incident end to end: a real Celery worker, Pebble, and an sshd + nginx
host serving several certificates. Every chosen certificate is replaced,
served, and its old version revoked at the CA; the report lists each one."""

import csv
import datetime
import io
from decimal import Decimal

import pytest
from django.urls import reverse
from django.utils import timezone

from certificates import renewal
from certificates.incidents import service
from certificates.incidents.selection import Filter
from certificates.models import Certificate, DepositEntry, Incident, RenewalRun
from certificates.renewal import deposit
from certificates.tests.factories import ca_account, http01_certificate, sites_host
from certificates.tests.waiting import wait_for


def test_an_incident_replaces_every_chosen_certificate_and_revokes_the_old_ones(
    celery_processes, organization, pebble, target_host, settings, admin, client
):
    settings.ACME_CA_BUNDLE = str(pebble.ca_bundle)
    settings.DEPLOY_TLS_GRACE_SECONDS = 10
    names = [f"c{i}.{target_host.name}" for i in range(3)]
    host = sites_host(organization, target_host, names)
    ca = ca_account(organization, directory_url=pebble.directory_url, price=Decimal("100"))
    deposit.top_up(ca_account=ca, amount=Decimal("500"))
    certificates = [http01_certificate(organization, ca, host, [name],
                                       tags="shop" if i < 2 else "mail")
                    for i, name in enumerate(names)]
    for cert in certificates:
        assert renewal.run_inline(certificate_id=cert.pk).status == "succeeded"
    old = {c.pk: Certificate.objects.get(pk=c.pk).current_version for c in certificates}
    chosen, untouched = certificates[:2], certificates[2]

    worker = celery_processes.worker(ACME_CA_BUNDLE=pebble.ca_bundle,
                                     DEPLOY_TLS_GRACE_SECONDS=10)
    incident = service.start(organization=organization, name="CA validation bug",
                             chosen=Filter(ca_account_id=ca.pk, tag="shop"),
                             deadline=timezone.now() + datetime.timedelta(hours=1),
                             revoke_old=True, by=admin)
    assert incident.reserved == Decimal("200")

    wait_for(lambda: Incident.objects.get(pk=incident.pk).status == "completed", 120,
             "the incident's end", worker)

    for cert in chosen:
        cert.refresh_from_db()
        assert cert.current_version_id != old[cert.pk].pk
        target_host.wait_for_served_leaf(cert.current_version.fingerprint_sha256,
                                         name=cert.common_name)
        assert pebble.cert_status(old[cert.pk].serial_hex)["Status"] == "Revoked"
        assert pebble.cert_status(cert.current_version.serial_hex)["Status"] == "Valid"
    untouched.refresh_from_db()
    assert untouched.current_version_id == old[untouched.pk].pk
    assert pebble.cert_status(old[untouched.pk].serial_hex)["Status"] == "Valid"
    # Charged once per replacement, through the ledger; nothing left reserved.
    charges = DepositEntry.objects.filter(ca_account=ca, kind="charge").count()
    assert charges == 5 and ca.reserved() == 0

    client.force_login(admin)
    report = client.get(reverse("certificates:incident_report", args=[incident.pk]))
    rows = list(csv.DictReader(io.StringIO(report.content.decode())))
    assert sorted(row["common_name"] for row in rows) == sorted(c.common_name for c in chosen)
    for row in rows:
        assert row["replaced_at"] and row["old_version_revoked_at"]
        assert row["old_serial"] == old[int(row["certificate"])].serial_hex
        assert row["new_serial"] and row["new_serial"] != row["old_serial"]
    page = client.get(reverse("certificates:incident", args=[incident.pk])).content.decode()
    assert 'id="incident-done">2<' in page and 'id="incident-revoked">2<' in page

    # The deposit has nothing left for three more: refused before anything is ordered.
    assert ca.available() == 0
    runs_before = RenewalRun.objects.count()
    with pytest.raises(service.DepositShort):
        service.start(organization=organization, name="Distrust", chosen=Filter(),
                      deadline=timezone.now() + datetime.timedelta(hours=1), by=admin)
    assert RenewalRun.objects.count() == runs_before
    assert Incident.objects.count() == 1
