"""Reading an enrolled host's certificate files through the API: POST
/api/v1/inventory/discover/ with a host and paths queues a discovery that reads
them over SSH (a real OpenSSH server); a request that mixes a scan and a
reading, a relative path, an agent host or another organisation's host is
refused naming the field, and nothing is saved."""

import pytest

from api.tests.conftest import client_for, make_token
from certificates.inventory import discovery_runs
from certificates.models import AuditEvent, Discovery, InventoryCertificate
from certificates.tests.factories import agent_host, portal_host

DISCOVER = "/api/v1/inventory/discover/"


def test_the_api_reads_a_hosts_files_into_findings(organization, operator, target_host):
    host = portal_host(organization, target_host)
    served = target_host.served_leaf_sha256()
    api = client_for(make_token(operator)[1])
    folder = str(target_host.fullchain_path.parent)
    # A folder holding a link to a certificate that is gone: its error is kept.
    broken = target_host.fullchain_path.parent / "broken"
    broken.mkdir()
    (broken / "gone.pem").symlink_to("/nonexistent/gone.pem")
    response = api.post(DISCOVER, {"host": host.pk, "paths": [folder, str(broken)]},
                        format="json")
    assert response.status_code == 202, response.json()
    body = response.json()
    assert (body["kind"], body["status"], body["host"]) == ("files", "queued", host.pk)
    assert body["paths"] == [folder, str(broken)]
    assert response["Location"] == f"/api/v1/discoveries/{body['id']}/"
    assert AuditEvent.objects.filter(action="discovery_started", user=operator,
                                     params__kind="files", params__via="api").exists()

    discovery_runs.run(body["id"])  # as the worker does with the task it was sent
    polled = api.get(response["Location"]).json()
    assert polled["status"] == "done", polled
    assert polled["found"] >= 1 and polled["checked"] == polled["total"] >= 2
    [finding] = [f for f in polled["findings"] if f["fingerprint_sha256"] == served]
    assert finding["status"] == "found"
    assert any(str(target_host.fullchain_path) in place for place in finding["seen_at"])
    # The unreadable file is said in the reader's language, from a stored key.
    [stored] = Discovery.objects.get(pk=body["id"]).errors
    assert stored["kind"] == "RemoteFileError" and stored["key"], stored
    [said] = polled["errors"]
    assert said.startswith("File operation refused: ") and "gone.pem" in said, said
    [said] = api.get(response["Location"], HTTP_ACCEPT_LANGUAGE="ja").json()["errors"]
    assert said != polled["errors"][0] and "gone.pem" in said, said


@pytest.mark.django_db
@pytest.mark.parametrize(("given", "field"), [
    ({"paths": ["/etc/ssl"]}, "host"),
    ({"targets": "127.0.0.1", "paths": ["/etc/ssl"]}, "host"),
    ({}, "targets"),
])
def test_a_reading_without_a_host_is_refused_naming_the_field(organization, operator,
                                                              given, field):
    response = client_for(make_token(operator)[1]).post(DISCOVER, given, format="json")
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == field
    assert not Discovery.objects.exists()


@pytest.mark.django_db
def test_a_hosts_reading_is_refused_naming_the_field_and_nothing_is_saved(
        organization, other_organization, operator, viewer, target_host):
    host = portal_host(organization, target_host)
    unconfirmed = portal_host(organization, target_host, confirmed=False, name="new")
    agent = agent_host(organization)
    elsewhere = portal_host(other_organization, target_host, name="theirs")
    api = client_for(make_token(operator)[1])

    def refused(body, field):
        response = api.post(DISCOVER, body, format="json")
        assert response.status_code == 400, response.json()
        error = response.json()["errors"][0]
        assert error["field"] == field, error
        return error["message"]

    assert "not both" in refused({"host": host.pk, "paths": ["/etc"], "targets": "127.0.0.1"},
                                 "targets")
    refused({"host": host.pk}, "paths")
    refused({"host": host.pk, "paths": []}, "paths")
    assert "etc/ssl" in refused({"host": host.pk, "paths": ["etc/ssl"]}, "paths")
    refused({"host": host.pk, "paths": ["/etc/ssl"] * 2 + [f"/p{i}" for i in range(60)]},
            "paths")
    assert "new" in refused({"host": unconfirmed.pk, "paths": ["/etc/ssl"]}, "host")
    refused({"host": agent.pk, "paths": ["/etc/ssl"]}, "host")
    # Another organisation's host is one that does not exist, as every id outside.
    refused({"host": elsewhere.pk, "paths": ["/etc/ssl"]}, "host")
    refused({"host": 999999, "paths": ["/etc/ssl"]}, "host")
    refused({"host": host.pk, "paths": ["/etc/ssl"], "organization": other_organization.pk},
            "organization")
    # A viewer sees the host, but may not start discoveries in its organisation.
    response = client_for(make_token(viewer)[1]).post(
        DISCOVER, {"host": host.pk, "paths": ["/etc/ssl"]}, format="json")
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "host"
    assert not Discovery.objects.exists() and not InventoryCertificate.objects.exists()
    assert not AuditEvent.objects.filter(action="discovery_started").exists()
