"""Archiving a certificate: an administrator puts it aside with its history; it is
no longer renewed, alerted on, counted on the dashboard or in the deposit
forecast, nor chosen by an incident, and is listed under "Archived" only.
Restoring it brings it back. In the pages and the API, audited, per organisation."""

import datetime

import pytest
from django.core import mail
from django.urls import reverse
from django.utils import timezone

from api.tests.conftest import client_for, make_token
from certificates.alerts import notify
from certificates.incidents.selection import Filter, matching
from certificates.models import AuditEvent, Certificate, RenewalRun
from certificates.renewal import checks, deposit, scheduling
from certificates.renewal import limits as renewal_limits
from certificates.tests.factories import ca_account, certificate, version_for
from certificates.tests.pages import page

pytestmark = pytest.mark.django_db


@pytest.fixture
def ca(organization):
    return ca_account(organization)


def _due(organization, ca, name, **fields):
    """A certificate whose renewal time has come, expiring in ten days."""
    now = timezone.now()
    defaults = dict(common_name=name, sans=[name], expires_at=now + datetime.timedelta(days=10),
                    renew_after=now - datetime.timedelta(days=1))
    return certificate(organization, ca, **{**defaults, **fields})


def _archive(client, cert):
    return client.post(reverse("certificates:certificate_archive", args=[cert.pk]))


def test_an_administrator_archives_from_the_page_and_it_is_audited(client, organization, ca,
                                                                   admin):
    cert = _due(organization, ca, "old.example.test")
    client.force_login(admin)
    html = page(client, "certificates:certificate", cert.pk)
    assert 'id="archive"' in html and 'id="renew-now"' in html

    response = _archive(client, cert)

    assert response.status_code == 302
    cert.refresh_from_db()
    assert cert.archived_at is not None
    event = AuditEvent.objects.get(action=AuditEvent.Action.CERTIFICATE_ARCHIVED)
    assert event.certificate == cert and event.user == admin
    html = page(client, "certificates:certificate", cert.pk)
    # Kept, with a note, a way back, and no renewal offered.
    assert 'id="archived-badge"' in html and 'id="archived-note"' in html
    assert 'id="restore"' in html and 'id="renew-now"' not in html and 'id="archive"' not in html


def test_restoring_brings_it_back_and_is_audited(client, organization, ca, admin):
    cert = _due(organization, ca, "back.example.test", archived_at=timezone.now())
    client.force_login(admin)

    client.post(reverse("certificates:certificate_restore", args=[cert.pk]))

    cert.refresh_from_db()
    assert cert.archived_at is None
    assert AuditEvent.objects.filter(action=AuditEvent.Action.CERTIFICATE_RESTORED,
                                     certificate=cert).count() == 1
    assert cert.pk in scheduling.due_certificates().values_list("pk", flat=True)


def test_operators_may_not_archive_and_another_organisation_gets_404(
        client, organization, ca, operator, outsider):
    cert = _due(organization, ca, "mine.example.test")
    client.force_login(operator)
    assert 'id="archive"' not in page(client, "certificates:certificate", cert.pk)
    assert _archive(client, cert).status_code == 403
    client.force_login(outsider)
    assert _archive(client, cert).status_code == 404
    assert client.post(reverse("certificates:certificate_restore",
                               args=[cert.pk])).status_code == 404
    cert.refresh_from_db()
    assert cert.archived_at is None and not AuditEvent.objects.exists()


def test_a_certificate_with_a_run_under_way_is_not_archived(client, organization, ca, admin):
    cert = _due(organization, ca, "busy.example.test")
    RenewalRun.objects.create(certificate=cert, trigger=RenewalRun.Trigger.MANUAL)
    client.force_login(admin)

    response = client.post(reverse("certificates:certificate_archive", args=[cert.pk]),
                           follow=True, HTTP_ACCEPT_LANGUAGE="en")

    assert "A renewal run of this certificate is under way" in response.content.decode()
    cert.refresh_from_db()
    assert cert.archived_at is None


def test_the_scheduler_skips_archived_certificates_and_renew_now_refuses_them(
        client, organization, ca, admin):
    kept = _due(organization, ca, "kept.example.test")
    archived = _due(organization, ca, "archived.example.test", archived_at=timezone.now())

    assert list(scheduling.due_certificates().values_list("pk", flat=True)) == [kept.pk]
    opened = scheduling.scan()
    assert RenewalRun.objects.filter(pk__in=opened).get().certificate == kept
    with pytest.raises(renewal_limits.Archived):
        scheduling.renew_now(certificate_id=archived.pk)
    client.force_login(admin)
    response = client.get(reverse("certificates:renew", args=[archived.pk]))
    assert response.status_code == 302 and not archived.runs.exists()


def test_no_alert_names_an_archived_certificate(organization, ca, owner, settings):
    archived = _due(organization, ca, "quiet.example.test", archived_at=timezone.now(),
                    failure_count=3)
    settings.EXPIRY_WARNING_DAYS = 30

    checks.periodic_checks()

    assert notify("expiring", certificate=archived) == []
    assert not archived.notifications.exists()
    # The CA account's low deposit may be told; nothing names the certificate.
    assert not [m for m in mail.outbox if "quiet.example.test" in m.subject + m.body]


def test_the_dashboard_and_the_forecast_leave_archived_certificates_out(
        client, organization, ca, owner):
    _due(organization, ca, "counted.example.test")
    archived = _due(organization, ca, "left-out.example.test", failure_count=2)
    client.force_login(owner)
    before = deposit.forecast(ca).due[30][0]
    assert before == 2

    archived_page = client.post(reverse("certificates:certificate_archive", args=[archived.pk]),
                                follow=True)  # its page, and the message that says so
    assert "is archived" in archived_page.content.decode()

    assert deposit.forecast(ca).due[30][0] == 1
    html = page(client, "certificates:dashboard")
    assert "1 certificate in Msen" in html
    assert "left-out.example.test" not in html  # neither a failing problem nor a mark
    listing = page(client, "certificates:certificates")
    assert "left-out.example.test" not in listing and "counted.example.test" in listing
    shelf = page(client, "certificates:certificates", state="archived")
    assert "left-out.example.test" in shelf and "counted.example.test" not in shelf


def test_an_incident_does_not_choose_archived_certificates(organization):
    for name in ("live.example.test", "gone.example.test"):
        version_for(organization, name, current=True)
    Certificate.objects.filter(common_name="gone.example.test").update(
        archived_at=timezone.now())

    chosen = matching(organization, Filter(name_pattern="*.example.test"))

    assert list(chosen.values_list("common_name", flat=True)) == ["live.example.test"]


def test_the_api_archives_and_restores_for_administrators_only(organization, ca, admin,
                                                               operator, outsider):
    cert = _due(organization, ca, "api.example.test")
    url = f"/api/v1/certificates/{cert.pk}/"
    as_operator = client_for(make_token(operator)[1])
    assert as_operator.post(url + "archive/").status_code == 403
    assert client_for(make_token(outsider)[1]).post(url + "archive/").status_code == 404
    api = client_for(make_token(admin)[1])

    response = api.post(url + "archive/")

    assert response.status_code == 200, response.content
    assert response.json()["archived_at"] and response.json()["changed"] is True
    assert api.post(url + "archive/").json()["changed"] is False  # recorded once
    event = AuditEvent.objects.get(action=AuditEvent.Action.CERTIFICATE_ARCHIVED)
    assert event.params == {"via": "api"} and event.user == admin
    listed = [c["id"] for c in api.get("/api/v1/certificates/").json()["results"]]
    assert cert.pk not in listed
    listed = api.get("/api/v1/certificates/?archived=true").json()["results"]
    assert [c["id"] for c in listed] == [cert.pk] and listed[0]["archived_at"]
    assert api.get(url).json()["archived_at"] == listed[0]["archived_at"]
    renew = api.post(url + "renew/", {}, format="json")
    assert renew.status_code == 409 and renew.json()["errors"][0]["code"] == "archived"

    response = api.post(url + "restore/")

    assert response.status_code == 200 and response.json()["archived_at"] is None
    assert AuditEvent.objects.filter(action=AuditEvent.Action.CERTIFICATE_RESTORED).count() == 1
