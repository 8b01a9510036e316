"""The happy path of every endpoint, as the owner of Msen with a read+write token."""

import pytest

from certificates.models import (
    Certificate,
    CertificateVersion,
    Deployment,
    RenewalRun,
    TargetHost,
)
from certificates.tests.factories import host, portal_host
from certificates.tests.pki import ssh_keygen_line, ssh_keypair

pytestmark = pytest.mark.django_db


@pytest.fixture
def api(owner, as_user):
    return as_user(owner)


# -- certificates ----------------------------------------------------------------------


def test_it_lists_certificates_with_filters_and_pages(api, world):
    ca = world["ca_account"]
    Certificate.objects.create(organization=world["certificate"].organization, ca_account=ca,
                               common_name="api.example.test", sans=["api.example.test"])
    body = api.get("/api/v1/certificates/", {"page_size": 1, "ordering": "common_name"}).json()
    assert body["count"] == 2 and len(body["results"]) == 1 and body["next"]
    assert body["results"][0]["common_name"] == "api.example.test"
    found = api.get("/api/v1/certificates/", {"search": "www", "ca_account": ca.pk}).json()
    assert [c["common_name"] for c in found["results"]] == ["www.example.test"]
    hosted = api.get("/api/v1/certificates/", {"host": world["host"].pk}).json()
    assert [c["id"] for c in hosted["results"]] == [world["certificate"].pk]
    soon = api.get("/api/v1/certificates/", {"expires_before": "2000-01-01T00:00:00Z"}).json()
    assert soon["count"] == 0


def test_a_certificate_on_several_hosts_is_listed_once_with_all_of_them(api, world, tmp_path):
    login_key, host_key = ssh_keypair(tmp_path, "second")
    second = host(world["host"].organization, login_key, host_key, name="web2",
                  address="127.0.0.3")
    Deployment.objects.create(certificate=world["certificate"], host=second)
    for params in ({}, {"host": second.pk}, {"host": world["host"].pk}):
        body = api.get("/api/v1/certificates/", params).json()
        assert [c["id"] for c in body["results"]] == [world["certificate"].pk], params
        assert body["count"] == 1
        assert sorted(body["results"][0]["hosts"]) == sorted([world["host"].pk, second.pk])


def test_a_certificate_shows_no_secret(api, world):
    body = api.get(f"/api/v1/certificates/{world['certificate'].pk}/").json()
    assert "tsig_secret" not in body and "private_key" not in body
    assert body["hosts"] == [world["host"].pk]
    assert body["current_version"] == world["version"].pk


def test_it_creates_a_certificate_with_normalised_names_and_its_hosts(api, world,
                                                                      organization):
    # The host already carries a certificate: a second one needs files of its own.
    TargetHost.objects.filter(pk=world["host"].pk).update(
        private_key_path="/etc/ssl/{name}.key", certificate_path="/etc/ssl/{name}.crt",
        ca_bundle_path="/etc/ssl/{name}.ca", fullchain_path="/etc/ssl/{name}.full")
    response = api.post("/api/v1/certificates/", {
        "ca_account": world["ca_account"].pk, "common_name": "WWW.Bücher.example.test",
        "sans": ["shop.example.test"], "hosts": [world["host"].pk]}, format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["organization"] == organization.pk  # the only one: may be left out
    assert body["common_name"] == "www.xn--bcher-kva.example.test"
    assert body["sans"][0] == body["common_name"] and "shop.example.test" in body["sans"]
    assert body["hosts"] == [world["host"].pk]
    assert Deployment.objects.filter(certificate_id=body["id"], host=world["host"]).exists()


def test_a_certificate_created_without_sans_answers_its_common_name_as_its_names(api, world):
    response = api.post("/api/v1/certificates/", {
        "ca_account": world["ca_account"].pk, "common_name": "Shop.Example.test"},
        format="json")
    assert response.status_code == 201, response.content
    assert response.json()["sans"] == ["shop.example.test"]
    cert = Certificate.objects.get(pk=response.json()["id"])
    assert cert.sans == ["shop.example.test"]
    # A new common name is put first among the names without the SANs being given.
    response = api.patch(f"/api/v1/certificates/{cert.pk}/", {
        "common_name": "store.example.test"}, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["sans"][0] == "store.example.test"
    # Stored earlier without them: the names it is issued for.
    Certificate.objects.filter(pk=cert.pk).update(sans=[])
    assert api.get(f"/api/v1/certificates/{cert.pk}/").json()["sans"] == ["store.example.test"]


def test_http01_on_hosts_without_a_document_root_is_refused(api, world, tmp_path):
    login_key, host_key = ssh_keypair(tmp_path, "bare")
    bare = host(world["host"].organization, login_key, host_key, name="bare.example.test",
                address="127.0.0.3", document_root="")
    response = api.post("/api/v1/certificates/", {
        "ca_account": world["ca_account"].pk, "common_name": "shop.example.test",
        "challenge": "http-01", "hosts": [bare.pk]}, format="json")
    assert response.status_code == 400, response.content
    [message] = [e["message"] for e in response.json()["errors"] if e["field"] == "hosts"]
    assert "document root" in message and "bare.example.test" in message
    assert "DNS-01" in message
    assert not Certificate.objects.filter(common_name="shop.example.test").exists()

    # The hosts already bound count when only the challenge changes...
    cert = world["certificate"]
    Deployment.objects.filter(certificate=cert).delete()
    Deployment.objects.create(certificate=cert, host=bare)
    response = api.patch(f"/api/v1/certificates/{cert.pk}/", {"challenge": "http-01"},
                         format="json")
    assert response.status_code == 400
    assert [e["field"] for e in response.json()["errors"]] == ["hosts"]
    # ...and the hosts given replace them.
    response = api.patch(f"/api/v1/certificates/{cert.pk}/", {
        "challenge": "http-01", "hosts": [world["host"].pk]}, format="json")
    assert response.status_code == 200, response.content
    assert list(cert.hosts.all()) == [world["host"]]


def test_it_updates_and_deletes_a_certificate(api, world):
    cert = world["certificate"]
    response = api.put(f"/api/v1/certificates/{cert.pk}/", {
        "ca_account": world["ca_account"].pk, "common_name": "www.example.test",
        "challenge": "http-01", "auto_renew": False, "hosts": []}, format="json")
    assert response.status_code == 200, response.content
    cert.refresh_from_db()
    assert cert.auto_renew is False and cert.challenge == "http-01"
    assert not cert.deployments.exists()
    response = api.patch(f"/api/v1/certificates/{cert.pk}/", {"auto_renew": True},
                         format="json")
    assert response.status_code == 200 and response.json()["auto_renew"] is True
    assert api.delete(f"/api/v1/certificates/{cert.pk}/").status_code == 204
    assert not Certificate.objects.filter(pk=cert.pk).exists()


def test_renew_now_opens_a_run_that_can_be_polled(api, world, django_capture_on_commit_callbacks,
                                                   monkeypatch):
    from certificates import tasks

    queued = []
    monkeypatch.setattr(tasks.renew, "delay", queued.append)
    world["run"].status = RenewalRun.Status.SUCCEEDED
    world["run"].save()
    cert = world["certificate"]
    with django_capture_on_commit_callbacks(execute=True):
        response = api.post(f"/api/v1/certificates/{cert.pk}/renew/")
    assert response.status_code == 202
    run = response.json()
    assert run["trigger"] == "api" and run["is_open"] is True and run["status"] == "queued"
    assert response["Location"] == f"/api/v1/runs/{run['id']}/"
    assert queued == [run["id"]]
    # A second "renew now" while it is open returns the same run.
    assert api.post(f"/api/v1/certificates/{cert.pk}/renew/").json()["id"] == run["id"]
    detail = api.get(response["Location"]).json()
    assert detail["id"] == run["id"] and detail["steps"] == []


def test_renew_now_is_a_conflict_when_the_run_it_met_ended_meanwhile(api, world,
                                                                      monkeypatch):
    from certificates.renewal import scheduling

    # Another run opened as this one was about to, and ended before the second look.
    monkeypatch.setattr(scheduling, "_start_by_person", lambda **kwargs: None)
    world["run"].status = RenewalRun.Status.SUCCEEDED
    world["run"].save()
    response = api.post(f"/api/v1/certificates/{world['certificate'].pk}/renew/")
    assert response.status_code == 409
    assert response.json()["errors"][0]["code"] == "not_started"


def test_deploy_now_opens_a_deploy_only_run_and_enqueues_it_after_commit(
        api, world, owner, django_capture_on_commit_callbacks, monkeypatch):
    from certificates import tasks

    sent = []
    monkeypatch.setattr(tasks.renew, "delay", sent.append)
    RenewalRun.objects.all().delete()
    cert, host = world["certificate"], world["host"]
    with django_capture_on_commit_callbacks(execute=True):
        response = api.post(f"/api/v1/certificates/{cert.pk}/deploy/",
                            {"hosts": [host.pk]}, format="json")
    assert response.status_code == 202, response.content
    body = response.json()
    assert (body["intent"], body["hosts"], body["trigger"]) == ("deploy", [host.pk], "api")
    assert body["requested_by"] == owner.username
    assert response["Location"] == f"/api/v1/runs/{body['id']}/"
    assert sent == [body["id"]]


def test_deploy_now_refuses_a_host_of_another_certificate(api, world, organization,
                                                          tmp_path):
    login_key, _public = ssh_keypair(tmp_path, "other")
    stranger = host(organization, login_key, name="web2", address="127.0.0.3")
    response = api.post(f"/api/v1/certificates/{world['certificate'].pk}/deploy/",
                        {"hosts": [stranger.pk]}, format="json")
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "hosts"


def test_deploy_now_without_an_issued_version_is_a_conflict(api, world):
    cert = world["certificate"]
    Certificate.objects.filter(pk=cert.pk).update(current_version=None)
    response = api.post(f"/api/v1/certificates/{cert.pk}/deploy/", {}, format="json")
    assert response.status_code == 409
    assert response.json()["errors"][0]["code"] == "nothing_to_deploy"


def test_a_versions_serial_is_shown_as_openssl_shows_it_with_its_leading_zero(api, world):
    # Stored before serials were stored in openssl's form: lowercase, the zero lost.
    CertificateVersion.objects.filter(pk=world["version"].pk).update(serial="bf66d43f1f007d3")
    versions = api.get(f"/api/v1/certificates/{world['certificate'].pk}/versions/").json()
    assert versions["results"][0]["serial"] == "0BF66D43F1F007D3"


def test_it_lists_versions_and_downloads_chain_and_full_chain(api, world):
    cert, version = world["certificate"], world["version"]
    versions = api.get(f"/api/v1/certificates/{cert.pk}/versions/").json()
    assert [v["id"] for v in versions["results"]] == [version.pk]
    assert "private_key" not in versions["results"][0]
    full = api.get(f"/api/v1/certificates/{cert.pk}/fullchain/")
    assert full.status_code == 200
    assert full["Content-Type"] == "application/pem-certificate-chain"
    assert full.content.decode() == version.fullchain_pem()
    assert "PRIVATE KEY" not in full.content.decode()
    chain = api.get(f"/api/v1/certificates/{cert.pk}/chain/", {"version": version.pk})
    assert chain.status_code == 200 and chain.content.decode() == version.intermediates_pem()
    missing = api.get(f"/api/v1/certificates/{cert.pk}/chain/", {"version": 999999})
    assert missing.status_code == 409


# -- hosts ------------------------------------------------------------------------------


def test_it_creates_reads_updates_and_deletes_a_host(api, world, tmp_path):
    login_key, _public = ssh_keypair(tmp_path, "new-host")
    response = api.post("/api/v1/hosts/", {
        "name": "web9", "address": "127.0.0.9", "ssh_user": "deploy", "login_key": login_key,
        "private_key_path": "/etc/ssl/private/site.key", "certificate_path": "/etc/ssl/site.crt",
        "backup_dir": "/var/backups/certs"}, format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert "login_key" not in body and body["host_key_confirmed"] is False
    url = f"/api/v1/hosts/{body['id']}/"
    assert api.get(url).json()["name"] == "web9"
    assert api.get("/api/v1/hosts/", {"search": "web9"}).json()["count"] == 1
    response = api.patch(url, {"ssh_port": 2200}, format="json")
    assert response.status_code == 200 and response.json()["ssh_port"] == 2200
    assert TargetHost.objects.get(pk=body["id"]).login_key == login_key  # kept
    assert api.delete(url).status_code == 204


def test_a_host_key_is_confirmed_explicitly_with_its_fingerprint(api, world):
    host = world["host"]
    assert api.get(f"/api/v1/hosts/{host.pk}/").json()["host_key_confirmed"] is False
    wrong = api.post(f"/api/v1/hosts/{host.pk}/confirm-host-key/",
                     {"fingerprint": "SHA256:" + "A" * 43}, format="json")
    assert wrong.status_code == 400
    assert wrong.json()["errors"][0]["field"] == "fingerprint"
    right = api.post(f"/api/v1/hosts/{host.pk}/confirm-host-key/",
                     {"fingerprint": host.host_key_fingerprint}, format="json")
    assert right.status_code == 200
    assert right.json() == {"host_key_fingerprint": host.host_key_fingerprint,
                            "host_key_confirmed": True}


def test_an_unreachable_host_is_a_bad_gateway_not_a_500(api, world):
    from testbed.ports import free_port

    host = world["host"]
    TargetHost.objects.filter(pk=host.pk).update(address="127.0.0.1",
                                                 ssh_port=free_port("127.0.0.1"))
    response = api.post(f"/api/v1/hosts/{host.pk}/fetch-host-key/")
    assert response.status_code == 502
    assert response.json()["errors"][0]["code"] == "host_unreachable"
    checks = api.post(f"/api/v1/hosts/{host.pk}/test-connection/").json()
    assert checks["ok"] is False and checks["checks"][0]["name"] == "connect"


def test_a_host_is_enrolled_over_the_api_against_a_real_sshd(api, organization, target_host):
    host = portal_host(organization, target_host, confirmed=False)
    fetched = api.post(f"/api/v1/hosts/{host.pk}/fetch-host-key/")
    assert fetched.status_code == 200, fetched.content
    assert fetched.json() == {"host_key_fingerprint": target_host.host_key_fingerprint,
                              "host_key_confirmed": False}
    confirmed = api.post(f"/api/v1/hosts/{host.pk}/confirm-host-key/",
                         {"fingerprint": target_host.host_key_fingerprint}, format="json")
    assert confirmed.json()["host_key_confirmed"] is True
    tested = api.post(f"/api/v1/hosts/{host.pk}/test-connection/").json()
    assert tested["ok"] is True, tested


def test_a_host_key_is_confirmed_over_the_api_with_the_line_ssh_keygen_printed(
        api, organization, target_host, tmp_path):
    host = portal_host(organization, target_host, confirmed=False)
    api.post(f"/api/v1/hosts/{host.pk}/fetch-host-key/")
    other = ssh_keygen_line(tmp_path, ssh_keypair(tmp_path)[1])
    refused = api.post(f"/api/v1/hosts/{host.pk}/confirm-host-key/",
                       {"fingerprint": other}, format="json")
    assert refused.status_code == 400
    assert "intercepting" in refused.json()["errors"][0]["message"]

    line = ssh_keygen_line(tmp_path, target_host.host_public_key)
    confirmed = api.post(f"/api/v1/hosts/{host.pk}/confirm-host-key/",
                         {"fingerprint": line}, format="json")

    assert confirmed.status_code == 200, confirmed.content
    assert confirmed.json() == {"host_key_fingerprint": target_host.host_key_fingerprint,
                                "host_key_confirmed": True}


# -- deployments, runs, CA accounts, orders ----------------------------------------------------


def test_it_lists_and_shows_deployments(api, world):
    body = api.get("/api/v1/deployments/", {"certificate": world["certificate"].pk}).json()
    assert [d["id"] for d in body["results"]] == [world["deployment"].pk]
    detail = api.get(f"/api/v1/deployments/{world['deployment'].pk}/").json()
    assert detail["host"] == world["host"].pk and detail["last_status"] == "pending"


def test_it_lists_runs_and_shows_one_with_its_steps(api, world):
    run = world["run"]
    body = api.get("/api/v1/runs/", {"status": "queued"}).json()
    assert [r["id"] for r in body["results"]] == [run.pk]
    assert "steps" not in body["results"][0]
    detail = api.get(f"/api/v1/runs/{run.pk}/").json()
    assert detail["is_open"] is True
    assert [(s["name"], s["status"]) for s in detail["steps"]] == [("order", "done")]
    assert "private_key" not in detail


def test_it_shows_a_ca_account_its_balance_ledger_and_forecast(api, world):
    ca = world["ca_account"]
    body = api.get(f"/api/v1/ca-accounts/{ca.pk}/").json()
    assert body["balance"] == "10000.00"
    assert "account_key" not in body and "eab_hmac_key" not in body
    assert api.get("/api/v1/ca-accounts/").json()["results"][0]["balance"] == "10000.00"
    balance = api.get(f"/api/v1/ca-accounts/{ca.pk}/balance/").json()
    assert balance == {"balance": "10000.00", "reserved": "0.00", "available": "10000.00",
                       "currency": "JPY", "price": "1100.00",
                       "low_balance_threshold": "5000.00"}
    ledger = api.get(f"/api/v1/ca-accounts/{ca.pk}/ledger/").json()
    assert [e["kind"] for e in ledger["results"]] == ["topup"]
    forecast = api.get(f"/api/v1/ca-accounts/{ca.pk}/forecast/").json()
    assert [h["days"] for h in forecast["horizons"]] == [30, 60, 90]
    assert forecast["balance"] == "10000.00" and "is_low" in forecast


def test_an_administrator_tops_up_the_deposit(api, world, owner):
    ca = world["ca_account"]
    response = api.post(f"/api/v1/ca-accounts/{ca.pk}/top-up/",
                        {"amount": "5500", "note": "invoice 42"}, format="json")
    assert response.status_code == 201, response.content
    entry = response.json()
    assert entry["amount"] == "5500.00" and entry["created_by"] == owner.username
    assert api.get(f"/api/v1/ca-accounts/{ca.pk}/balance/").json()["balance"] == "15500.00"


def test_it_lists_and_shows_orders(api, world):
    order = world["order"]
    body = api.get("/api/v1/orders/", {"status": "pending"}).json()
    assert [o["code"] for o in body["results"]] == [order.code]
    assert api.get(f"/api/v1/orders/{order.pk}/").json()["product"] == "single"
