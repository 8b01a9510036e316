"""Incident mode in the database, with time injected: which certificates a filter
chooses, the deposit reserved up front (or the incident refused before anything
is ordered), pause and resume, and retries shortened to fit the deadline."""

import datetime
from decimal import Decimal

import pytest
from django.utils import timezone

from certificates import tasks
from certificates.incidents import outcomes, service
from certificates.incidents.selection import Filter, matching, preview
from certificates.models import (
    Certificate,
    CertificateVersion,
    Deployment,
    DepositEntry,
    Incident,
    IncidentCertificate,
    RenewalRun,
    Reservation,
)
from certificates.renewal import deposit, lifecycle
from certificates.renewal import run as run_service
from certificates.renewal.issuance import IssuanceFailed
from certificates.tests import factories

pytestmark = pytest.mark.django_db

HOUR = datetime.timedelta(hours=1)


@pytest.fixture
def enqueued(monkeypatch):
    """(task name, args, priority) of every message an incident sends."""
    sent = []

    def capture(name):
        def apply_async(args, priority=None, **kwargs):
            sent.append((name, tuple(args), priority))
        return apply_async

    for name in ("renew", "deploy_run", "incident_item_replaced"):
        monkeypatch.setattr(getattr(tasks, name), "apply_async", capture(name))
    monkeypatch.setattr(tasks.renew, "delay", lambda *args: sent.append(("renew", args, None)))
    return sent


@pytest.fixture
def fleet(organization, tmp_path):
    """Four issued certificates on two CA accounts, one host each."""
    ca = factories.ca_account(organization, name="Troubled CA", price=Decimal("100"))
    other = factories.ca_account(organization, name="Other CA", price=Decimal("0"))
    host = factories.host(organization, factories.ssh_keypair(tmp_path)[0])
    made = {}
    for name, account, key_type, tags in [
            ("www.shop.example.test", ca, "ec-p256", "shop eu"),
            ("api.shop.example.test", ca, "rsa-2048", "shop"),
            ("mail.example.test", ca, "ec-p256", "mail"),
            ("www.other.example.test", other, "ec-p256", "shop")]:
        cert = factories.certificate(organization, account, common_name=name, sans=[name],
                                     key_type=key_type, tags=tags)
        factories.make_current(cert, factories.new_version(cert, name))
        Deployment.objects.create(certificate=cert, host=host)
        made[name] = cert
    deposit.top_up(ca_account=ca, amount=Decimal("1000"))
    return made


def names(queryset):
    return sorted(queryset.values_list("common_name", flat=True))


def test_the_filter_chooses_by_account_issuer_date_key_names_and_tags(organization, fleet):
    troubled = fleet["mail.example.test"].ca_account_id
    assert names(matching(organization, Filter(ca_account_id=troubled))) == [
        "api.shop.example.test", "mail.example.test", "www.shop.example.test"]
    assert names(matching(organization, Filter(tag="shop"))) == [
        "api.shop.example.test", "www.other.example.test", "www.shop.example.test"]
    assert names(matching(organization, Filter(tag="sho"))) == []
    assert names(matching(organization, Filter(name_pattern="*.shop.example.test"))) == [
        "api.shop.example.test", "www.shop.example.test"]
    assert names(matching(organization, Filter(key_type="rsa-2048"))) == [
        "api.shop.example.test"]
    assert len(matching(organization, Filter(issuer_contains="throw-away"))) == 4
    assert len(matching(organization, Filter(issued_before=timezone.now() - HOUR))) == 0
    chosen = Filter(ca_account_id=troubled, tag="shop")
    shown = preview(organization, chosen)
    assert shown.count == 2 and shown.hosts == [("web1", 2)]
    assert [(c.count, c.total, c.short) for c in shown.costs] == [
        (2, Decimal("200"), Decimal("0"))]


def test_a_deposit_short_for_the_whole_incident_is_refused_before_anything_is_ordered(
    organization, fleet, admin, enqueued
):
    troubled = fleet["mail.example.test"].ca_account
    DepositEntry.objects.create(ca_account=troubled, kind=DepositEntry.Kind.CHARGE,
                                amount=Decimal("-750"), reference="charge:earlier")
    Reservation.objects.create(ca_account=troubled, amount=Decimal("100"),
                               run=RenewalRun.objects.create(
                                   certificate=fleet["mail.example.test"], trigger="schedule"))
    assert preview(organization, Filter(ca_account_id=troubled.pk)).can_pay is False

    with pytest.raises(service.DepositShort) as refused:
        service.start(organization=organization, name="CA bug",
                      chosen=Filter(ca_account_id=troubled.pk),
                      deadline=timezone.now() + HOUR, by=admin)

    assert "Missing: Troubled CA ¥150." in str(refused.value)
    assert not Incident.objects.exists()
    assert RenewalRun.objects.filter(trigger="incident").count() == 0
    assert Reservation.objects.count() == 1 and enqueued == []


def test_starting_reserves_every_price_and_opens_a_run_each_ahead_of_routine_ones(
    organization, fleet, admin, enqueued, django_capture_on_commit_callbacks, settings
):
    busy = fleet["mail.example.test"]
    routine = RenewalRun.objects.create(certificate=busy, trigger="schedule")
    troubled = busy.ca_account
    with django_capture_on_commit_callbacks(execute=True):
        incident = service.start(organization=organization, name="CA bug",
                                 chosen=Filter(ca_account_id=troubled.pk),
                                 deadline=timezone.now() + HOUR, revoke_old=True, by=admin)

    runs = RenewalRun.objects.filter(incident=incident)
    assert runs.count() == 2  # the third has a routine run open: the pass takes it after
    assert set(runs.values_list("trigger", "intent")) == {("incident", "issue")}
    assert incident.reserved == Decimal("200")
    assert Reservation.objects.filter(run__incident=incident, status="open").count() == 2
    assert troubled.available() == Decimal("800")
    assert sorted(enqueued) == sorted(("renew", (run.pk,), settings.INCIDENT_TASK_PRIORITY)
                                      for run in runs)
    assert settings.INCIDENT_TASK_PRIORITY < settings.CELERY_TASK_DEFAULT_PRIORITY
    assert incident.items.count() == 3

    # The routine run ends without issuing: the incident's pass opens the third.
    RenewalRun.objects.filter(pk=routine.pk).update(status="failed")
    with django_capture_on_commit_callbacks(execute=True):
        assert service.advance(incident) == 1
    assert RenewalRun.objects.filter(incident=incident).count() == 3


def test_retries_are_shortened_to_fit_the_deadline_and_wait_for_the_cas_retry_after(settings):
    settings.RENEWAL_RETRY_MIN_SECONDS = 60
    now = timezone.now()
    hour = datetime.timedelta(minutes=100)
    # 100 minutes, as a routine third failure would wait; 2 hours to the deadline: 30 min.
    assert outcomes.retry_time(hour, deadline=now + 2 * HOUR, now=now) == now + HOUR / 2
    # A short step stays as it is.
    one = datetime.timedelta(minutes=1)
    assert outcomes.retry_time(one, deadline=now + 2 * HOUR, now=now) == now + one
    # Near or past the deadline: the floor, not nothing.
    assert outcomes.retry_time(hour, deadline=now - HOUR, now=now) == now + one
    # The CA's Retry-After wins over a shorter step.
    later = now + datetime.timedelta(minutes=45)
    assert outcomes.retry_time(hour, deadline=now + 2 * HOUR, now=now,
                               retry_after=later) == later


def test_a_failed_run_is_retried_when_its_shortened_backoff_ends_and_not_before(
    organization, fleet, admin, enqueued, django_capture_on_commit_callbacks
):
    cert = fleet["www.shop.example.test"]
    with django_capture_on_commit_callbacks(execute=True):
        incident = service.start(organization=organization, name="CA bug",
                                 chosen=Filter(name_pattern="www.shop.*"),
                                 deadline=timezone.now() + 2 * HOUR, by=admin)
    # Two failures before: the third routine step is 100 minutes.
    Certificate.objects.filter(pk=cert.pk).update(failure_count=2)
    run = lifecycle.claim(RenewalRun.objects.get(incident=incident).pk)
    run_service.fail(run, IssuanceFailed("The CA is down.", transient=True))
    item = IncidentCertificate.objects.get(incident=incident)
    assert item.failures == 1 and "The CA is down." in item.last_error
    left = item.next_try_at - timezone.now()
    assert datetime.timedelta(minutes=25) < left <= datetime.timedelta(minutes=30)
    cert.refresh_from_db()
    assert cert.next_attempt_at == item.next_try_at  # the routine scan waits as long

    assert service.advance(incident, now=item.next_try_at - datetime.timedelta(seconds=1)) == 0
    with django_capture_on_commit_callbacks(execute=True):
        assert service.advance(incident, now=item.next_try_at) == 1
    progress = service.progress(incident)
    assert (progress.total, progress.replaced, progress.failing) == (1, 0, 0)


def test_the_cas_retry_after_holds_every_certificate_of_its_account(
    organization, fleet, admin, enqueued, django_capture_on_commit_callbacks
):
    troubled = fleet["mail.example.test"].ca_account_id
    with django_capture_on_commit_callbacks(execute=True):
        incident = service.start(organization=organization, name="CA bug",
                                 chosen=Filter(ca_account_id=troubled),
                                 deadline=timezone.now() + 2 * HOUR, by=admin)
    later = timezone.now() + datetime.timedelta(minutes=10)
    first, *others = RenewalRun.objects.filter(incident=incident).order_by("pk")
    run = lifecycle.claim(first.pk)
    run_service.fail(run, IssuanceFailed("rateLimited", transient=True, retry_after=later))
    item = IncidentCertificate.objects.get(incident=incident, certificate=first.certificate)
    assert item.next_try_at == later
    for other in others:  # their runs ended too; their next try has come
        lifecycle.finish(lifecycle.claim(other.pk), "failed")
    IncidentCertificate.objects.exclude(pk=item.pk).update(next_try_at=timezone.now())
    assert service.advance(incident) == 0  # the CA asked to wait
    with django_capture_on_commit_callbacks(execute=True):
        assert service.advance(incident, now=later + datetime.timedelta(seconds=1)) == 3


def test_a_paused_incidents_runs_are_not_taken_up_until_it_resumes(
    organization, fleet, admin, enqueued, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        incident = service.start(organization=organization, name="CA bug",
                                 chosen=Filter(tag="shop"),
                                 deadline=timezone.now() + HOUR, by=admin)
    runs = list(RenewalRun.objects.filter(incident=incident).values_list("pk", flat=True))
    assert service.pause(incident, by=admin)
    assert not service.pause(incident, by=admin)  # guarded: once
    assert lifecycle.claim(runs[0]) is None
    RenewalRun.objects.filter(pk__in=runs).update(lease_until=timezone.now() - HOUR)
    assert lifecycle.requeue_lost() == []  # resuming enqueues them, not recovery
    enqueued.clear()

    with django_capture_on_commit_callbacks(execute=True):
        assert service.resume(incident, by=admin)
    assert sorted(args[0] for _name, args, _priority in enqueued) == sorted(runs)
    assert lifecycle.claim(runs[0]) is not None
    assert incident.organization.audit_events.filter(
        action__in=["incident_started", "incident_paused", "incident_resumed"]).count() == 3


def test_a_certificate_replaced_and_served_counts_and_its_old_version_is_revoked_after(
    organization, fleet, admin, enqueued, django_capture_on_commit_callbacks
):
    cert = fleet["api.shop.example.test"]
    with django_capture_on_commit_callbacks(execute=True):
        incident = service.start(organization=organization, name="CA bug",
                                 chosen=Filter(key_type="rsa-2048"),
                                 deadline=timezone.now() + HOUR, revoke_old=True, by=admin)
    run = lifecycle.claim(RenewalRun.objects.get(incident=incident).pk)
    new = factories.new_version(cert, cert.common_name)
    RenewalRun.objects.filter(pk=run.pk).update(version=new)
    run.version = new
    factories.make_current(cert, new)
    Deployment.objects.filter(certificate=cert).update(last_version=new, served=True,
                                                       last_status="deployed")
    assert lifecycle.to_deploying(run)
    enqueued.clear()
    with django_capture_on_commit_callbacks(execute=True):
        run_service.succeed(run)

    item = IncidentCertificate.objects.get(incident=incident)
    assert item.replaced_at is not None and item.new_version_id == new.pk
    assert enqueued == [("incident_item_replaced", (item.pk,), 0)]
    rows = service.report_rows(incident)
    assert rows[0][1] == cert.common_name and rows[0][4] == new.serial_hex
    assert rows[0][5] and not rows[0][6]
    assert CertificateVersion.objects.get(pk=item.old_version_id).revoked_at is None


def test_an_administrator_previews_starts_and_pauses_an_incident_in_the_browser(
    organization, fleet, admin, operator, client, enqueued
):
    from django.urls import reverse

    from accounts.tests.factors import reauthenticate

    troubled = fleet["mail.example.test"].ca_account
    form = {"name": "CA bug", "ca_account": troubled.pk, "tag": "shop", "key_type": "",
            "deadline": (timezone.localtime() + HOUR).strftime("%Y-%m-%dT%H:%M"),
            "revoke_old": "on", "revocation_reason": "4"}
    client.force_login(operator)
    assert client.get(reverse("certificates:incident_create")).status_code == 403
    client.force_login(admin)
    shown = client.post(reverse("certificates:incident_create"), {**form, "preview": "1"})
    page = shown.content.decode()
    assert "2 certificates would be replaced" in page and "web1 (2)" in page
    assert "incident-start" in page and not Incident.objects.exists()

    asked = client.post(reverse("certificates:incident_create"), {**form, "start": "1"})
    assert asked.status_code == 302 and "reauthenticate" in asked["Location"]
    reauthenticate(client, admin)
    started = client.post(reverse("certificates:incident_create"), {**form, "start": "1"})
    incident = Incident.objects.get()
    assert started["Location"] == reverse("certificates:incident", args=[incident.pk])
    detail = client.get(started["Location"]).content.decode()
    assert 'id="incident-in-progress">2<' in detail and 'http-equiv="refresh"' in detail
    client.post(reverse("certificates:incident_pause", args=[incident.pk]))
    assert Incident.objects.get().status == "paused"
    client.post(reverse("certificates:incident_resume", args=[incident.pk]))
    assert Incident.objects.get().status == "running"
    listing = client.get(reverse("certificates:incidents")).content.decode()
    assert "CA bug" in listing
    audit = client.get(reverse("certificates:audit")).content.decode()
    for label in ("Incident started", "Incident paused", "Incident resumed"):
        assert f"<td>{label}</td>" in audit


def test_the_api_previews_starts_follows_and_reports_an_incident(
    organization, fleet, admin, operator, enqueued
):
    from api.tests.conftest import client_for, make_token

    body = {"organization": organization.pk, "tag": "shop",
            "ca_account": fleet["mail.example.test"].ca_account_id}
    as_operator = client_for(make_token(operator)[1])
    assert as_operator.post("/api/v1/incidents/preview/", body,
                            format="json").status_code == 400  # not their organisation to act
    api = client_for(make_token(admin)[1])
    shown = api.post("/api/v1/incidents/preview/", body, format="json").json()
    assert shown["count"] == 2 and shown["can_pay"] is True
    assert shown["hosts"] == [{"host": "web1", "certificates": 2}]

    deadline = (timezone.now() + HOUR).isoformat()
    made = api.post("/api/v1/incidents/", {**body, "name": "CA bug", "deadline": deadline,
                                           "revoke_old": True}, format="json")
    assert made.status_code == 201, made.content
    incident = made.json()
    assert incident["progress"]["total"] == 2 and incident["reserved"] == "200.00"
    assert api.post(f"/api/v1/incidents/{incident['id']}/pause/").json()["status"] == "paused"
    assert api.post(f"/api/v1/incidents/{incident['id']}/pause/").status_code == 409
    assert api.post(f"/api/v1/incidents/{incident['id']}/resume/").json()["status"] == "running"
    report = api.get(f"/api/v1/incidents/{incident['id']}/report/")
    assert report.status_code == 200 and report["Content-Type"].startswith("text/csv")
    assert report.content.decode().count("\n") == 3
    DepositEntry.objects.create(ca_account_id=body["ca_account"], kind="charge",
                                amount=Decimal("-700"), reference="charge:earlier")
    short = api.post("/api/v1/incidents/", {**body, "tag": "", "name": "Again",
                                            "deadline": deadline}, format="json")
    assert short.status_code == 409 and short.json()["errors"][0]["code"] == "deposit_short"


def test_on_redis_an_incidents_run_is_taken_before_routine_ones_sent_earlier(settings):
    """Through the Redis the portal runs on (TESTBED.md): three routine renewals
    queued, then an incident's; a worker's next message is the incident's."""
    from kombu import Connection

    broker = settings.CELERY_BROKER_URL
    url = broker if broker.startswith("redis://") else "redis://127.0.0.1:6379/15"
    private = "test-incident-priority"  # a queue of this test's own: nobody else's is touched
    with Connection(url) as connection:
        queue = connection.SimpleQueue(private)
        queue.clear()
        try:
            for run_id in (1, 2, 3):
                tasks.renew.apply_async((run_id,), connection=connection, queue=private)
            tasks.renew.apply_async((4,), connection=connection, queue=private,
                                    priority=settings.INCIDENT_TASK_PRIORITY)
            taken = []
            for _ in range(4):
                message = queue.get(timeout=5)
                taken.append(message.payload[0][0])
                message.ack()
        finally:
            queue.clear()
            queue.close()
    assert taken == [4, 1, 2, 3]
