"""Discovery in the background: asked for on the page or through the API, run by
a real Celery worker, its progress (found so far, checked of total) kept on its
row for the page and the API to follow; refusals save nothing; a failure ends
it with the reason."""

import socket
import time

import pytest
from django.urls import reverse

from api.tests.conftest import client_for, make_token
from certificates.inventory import discovery_runs
from certificates.models import AuditEvent, Discovery, InventoryCertificate

NAME = "mail.example.test"


def wait_for(condition, what, worker, timeout=60):
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"{what}\n{worker.log.read_text()[-3000:]}")
        time.sleep(0.1)


@pytest.fixture
def silent_port():
    """A port that takes connections and never says a word: a probe of it
    lasts its whole timeout, so the test can look at a discovery half done."""
    with socket.create_server(("127.0.0.1", 0)) as silent:
        yield silent.getsockname()[1]


def test_a_scan_runs_on_a_worker_and_its_page_follows_it(
        celery_processes, organization, operator, client, exim_smtp, silent_port, settings):
    ports = [exim_smtp.starttls_port, silent_port]
    settings.DISCOVERY_PORTS = ports
    client.force_login(operator)
    response = client.post(reverse("certificates:discovery"), {
        "scan": "1", "targets": "127.0.0.1",
        "ports": f"{exim_smtp.starttls_port}/smtp {silent_port}/imap", "names": NAME},
        HTTP_ACCEPT_LANGUAGE="en")
    run = Discovery.objects.get()
    assert response.status_code == 302
    assert response["Location"] == reverse("certificates:discovery_run", args=[run.pk])
    assert run.status == "queued" and run.total == 2 and run.requested_by == operator
    assert AuditEvent.objects.filter(action="discovery_started", user=operator).exists()
    page = client.get(response["Location"], HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert "Waiting for a worker" in page and 'http-equiv="refresh"' in page

    # One probe at a time: the certificate of the first port is stored while
    # the silent port still holds the worker for its timeout.
    worker = celery_processes.worker(DISCOVERY_PORTS=",".join(map(str, ports)),
                                     DISCOVERY_CONCURRENCY=1, DISCOVERY_TIMEOUT=4)
    wait_for(lambda: run.findings.exists(), "nothing found by the worker", worker)
    run.refresh_from_db()
    assert run.status == "running" and 1 <= run.checked < run.total
    page = client.get(response["Location"], HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert "Running" in page and NAME in page and 'http-equiv="refresh"' in page

    wait_for(lambda: Discovery.objects.get(pk=run.pk).status == "done", "not done", worker)
    run.refresh_from_db()
    # Two ports, then the name asked again where TLS answered.
    assert (run.checked, run.total, run.served) == (3, 3, 2)
    [row] = run.findings.all()
    assert row.fingerprint_sha256 == exim_smtp.leaf_sha256 and row.status == "found"
    assert run.finished_at and not run.errors
    page = client.get(response["Location"], HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert "Done" in page and 'http-equiv="refresh"' not in page
    assert client.get(reverse("certificates:discovery")).content.decode().count(
        reverse("certificates:discovery_run", args=[run.pk])) == 1


def test_the_api_returns_the_discovery_to_poll(celery_processes, organization, operator,
                                               exim_smtp, settings):
    settings.DISCOVERY_PORTS = [exim_smtp.starttls_port]
    api = client_for(make_token(operator)[1])
    response = api.post("/api/v1/inventory/discover/", {
        "targets": "127.0.0.1", "ports": f"{exim_smtp.starttls_port}/smtp"}, format="json")
    assert response.status_code == 202, response.json()
    body = response.json()
    assert body["status"] == "queued" and body["total"] == 1 and body["found"] == 0
    assert response["Location"] == f"/api/v1/discoveries/{body['id']}/"

    worker = celery_processes.worker(DISCOVERY_PORTS=str(exim_smtp.starttls_port))

    def polled():
        polled.body = api.get(response["Location"]).json()
        return polled.body["status"] in ("done", "failed")

    wait_for(polled, "the discovery did not end", worker)
    assert polled.body["status"] == "done", polled.body
    assert polled.body["checked"] == polled.body["total"] >= 1 and polled.body["found"] == 1
    [finding] = polled.body["findings"]
    assert finding["fingerprint_sha256"] == exim_smtp.leaf_sha256
    assert any(place.startswith("smtp://127.0.0.1:") for place in finding["seen_at"])
    listed = api.get("/api/v1/discoveries/").json()["results"]
    assert [(d["id"], d["found"]) for d in listed] == [(body["id"], 1)]


@pytest.mark.django_db
def test_a_refused_scan_saves_nothing_and_names_the_field(organization, operator, client,
                                                          settings):
    settings.OUTBOUND_ALLOW = []
    client.force_login(operator)
    response = client.post(reverse("certificates:discovery"), {
        "scan": "1", "targets": "127.0.0.1", "ports": "443"}, HTTP_ACCEPT_LANGUAGE="en")
    assert response.status_code == 200
    assert "127.0.0.1" in str(response.context["scan_form"].errors["targets"])
    api = client_for(make_token(operator)[1])
    response = api.post("/api/v1/inventory/discover/", {"targets": "127.0.0.1",
                                                        "ports": "22"}, format="json")
    assert response.status_code == 400 and response.json()["errors"][0]["field"] == "ports"
    assert not Discovery.objects.exists()
    assert not AuditEvent.objects.filter(action="discovery_started").exists()


@pytest.mark.django_db
def test_a_scan_no_longer_allowed_when_it_runs_fails_with_the_reason(organization, operator,
                                                                      client, settings):
    settings.DISCOVERY_PORTS = [443]
    run = discovery_runs.start(organization, by=operator, targets_text="127.0.0.1",
                               ports_text="443")
    settings.OUTBOUND_ALLOW = []  # the operator tightened the policy meanwhile
    discovery_runs.run(run.pk)
    run.refresh_from_db()
    assert run.status == "failed" and run.finished_at
    [error] = run.errors
    assert error["kind"] == "refused" and "127.0.0.1" in error["detail"]
    client.force_login(operator)
    page = client.get(reverse("certificates:discovery_run", args=[run.pk]),
                      HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert "Refused: Not allowed by the portal&#x27;s outbound policy" in page
    # Stored as a key: read in Japanese by a person reading Japanese.
    assert error["key"] == "discovery.refused_addresses" and error["params"] == {
        "addresses": "127.0.0.1"}
    page = client.get(reverse("certificates:discovery_run", args=[run.pk]),
                      HTTP_ACCEPT_LANGUAGE="ja").content.decode()
    assert "外部接続ポリシー" in page and "outbound policy" not in page
    # Delivered twice: an ended discovery is not run again.
    discovery_runs.run(run.pk)
    run.refresh_from_db()
    assert run.status == "failed" and len(run.errors) == 1
    assert not InventoryCertificate.objects.exists()


@pytest.mark.django_db
def test_another_organisation_cannot_see_a_discovery(organization, operator, outsider,
                                                     client, settings):
    settings.DISCOVERY_PORTS = [443]
    run = discovery_runs.start(organization, by=operator, targets_text="127.0.0.1",
                               ports_text="443")
    client.force_login(outsider)
    assert client.get(reverse("certificates:discovery_run", args=[run.pk])).status_code == 404
    api = client_for(make_token(outsider)[1])
    assert api.get(f"/api/v1/discoveries/{run.pk}/").status_code == 404
    assert api.get("/api/v1/discoveries/").json()["results"] == []
