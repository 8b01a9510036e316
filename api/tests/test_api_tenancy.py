"""Tenant isolation and roles: an outsider's token finds nothing of Msen's (404 on
every object and every action), and each role does what it is allowed, no more."""

import pytest

pytestmark = pytest.mark.django_db


def object_requests(world):
    cert, host, ca = world["certificate"].pk, world["host"].pk, world["ca_account"].pk
    return [
        ("get", f"/api/v1/certificates/{cert}/", None),
        ("put", f"/api/v1/certificates/{cert}/", {"common_name": "x.example.test"}),
        ("patch", f"/api/v1/certificates/{cert}/", {"auto_renew": False}),
        ("delete", f"/api/v1/certificates/{cert}/", None),
        ("post", f"/api/v1/certificates/{cert}/renew/", None),
        ("post", f"/api/v1/certificates/{cert}/deploy/", {}),
        ("get", f"/api/v1/certificates/{cert}/versions/", None),
        ("get", f"/api/v1/certificates/{cert}/chain/", None),
        ("get", f"/api/v1/certificates/{cert}/fullchain/", None),
        ("get", f"/api/v1/hosts/{host}/", None),
        ("put", f"/api/v1/hosts/{host}/", {"name": "x"}),
        ("patch", f"/api/v1/hosts/{host}/", {"name": "x"}),
        ("delete", f"/api/v1/hosts/{host}/", None),
        ("post", f"/api/v1/hosts/{host}/fetch-host-key/", None),
        ("post", f"/api/v1/hosts/{host}/confirm-host-key/", {"fingerprint": "SHA256:x"}),
        ("post", f"/api/v1/hosts/{host}/test-connection/", None),
        ("get", f"/api/v1/deployments/{world['deployment'].pk}/", None),
        ("get", f"/api/v1/runs/{world['run'].pk}/", None),
        ("get", f"/api/v1/ca-accounts/{ca}/", None),
        ("get", f"/api/v1/ca-accounts/{ca}/balance/", None),
        ("get", f"/api/v1/ca-accounts/{ca}/ledger/", None),
        ("get", f"/api/v1/ca-accounts/{ca}/forecast/", None),
        ("post", f"/api/v1/ca-accounts/{ca}/top-up/", {"amount": "100"}),
        ("get", f"/api/v1/orders/{world['order'].pk}/", None),
    ]


LISTS = ["/api/v1/certificates/", "/api/v1/hosts/", "/api/v1/deployments/", "/api/v1/runs/",
         "/api/v1/ca-accounts/", "/api/v1/orders/"]


def test_an_outsiders_token_gets_404_on_every_object(world, other_world, outsider, as_user):
    api = as_user(outsider)
    balance_before = world["ca_account"].balance()
    for method, url, body in object_requests(world):
        response = getattr(api, method)(url, body, format="json")
        assert response.status_code == 404, (method, url, response.content)
        assert response.json()["errors"][0]["code"] == "not_found"
    # Nothing was changed on the way.
    world["certificate"].refresh_from_db()
    assert world["certificate"].auto_renew is True
    assert world["certificate"].runs.count() == 1
    assert world["host"].__class__.objects.filter(pk=world["host"].pk).exists()
    assert world["ca_account"].balance() == balance_before


def test_an_outsider_reaches_their_own_objects(world, other_world, outsider, as_user):
    api = as_user(outsider)
    for method, url, _body in object_requests(other_world):
        if method == "get":
            assert api.get(url).status_code == 200, url


@pytest.mark.parametrize("url", LISTS)
def test_lists_hold_only_the_askers_organisations(url, world, other_world, owner, outsider,
                                                  as_user):
    mine = {r["id"] for r in as_user(owner).get(url).json()["results"]}
    theirs = {r["id"] for r in as_user(outsider).get(url).json()["results"]}
    assert mine and theirs and not mine & theirs


def test_an_outsider_cannot_create_in_another_organisation(world, other_world, outsider,
                                                           organization, as_user):
    api = as_user(outsider)
    response = api.post("/api/v1/certificates/", {
        "organization": organization.pk, "ca_account": other_world["ca_account"].pk,
        "common_name": "evil.example.test"}, format="json")
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "organization"
    response = api.post("/api/v1/certificates/", {
        "ca_account": world["ca_account"].pk, "common_name": "evil.example.test"},
        format="json")
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "ca_account"
    response = api.post("/api/v1/certificates/", {
        "ca_account": other_world["ca_account"].pk, "common_name": "evil.example.test",
        "hosts": [world["host"].pk]}, format="json")
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "hosts"


def test_a_viewer_reads_but_cannot_renew_or_change(world, viewer, as_user):
    api = as_user(viewer)
    cert = world["certificate"]
    assert api.get(f"/api/v1/certificates/{cert.pk}/").status_code == 200
    assert api.post(f"/api/v1/certificates/{cert.pk}/renew/").status_code == 403
    assert api.patch(f"/api/v1/certificates/{cert.pk}/", {"auto_renew": False},
                     format="json").status_code == 403
    response = api.post("/api/v1/certificates/", {"ca_account": world["ca_account"].pk,
                                                  "common_name": "v.example.test"},
                        format="json")
    assert response.status_code == 403
    assert response.json()["errors"][0]["code"] == "permission_denied"


def test_an_operator_renews_and_deploys_but_does_not_manage_hosts_or_money(world, operator,
                                                                           as_user):
    api = as_user(operator)
    cert, host, ca = world["certificate"], world["host"], world["ca_account"]
    cert.current_version = world["version"]
    cert.save()
    assert api.post(f"/api/v1/certificates/{cert.pk}/renew/").status_code == 202
    assert api.post(f"/api/v1/certificates/{cert.pk}/deploy/", {}, format="json"
                    ).status_code == 202
    assert api.patch(f"/api/v1/hosts/{host.pk}/", {"name": "renamed"},
                     format="json").status_code == 403
    assert api.post(f"/api/v1/hosts/{host.pk}/confirm-host-key/",
                    {"fingerprint": host.host_key_fingerprint}, format="json"
                    ).status_code == 403
    assert api.post(f"/api/v1/ca-accounts/{ca.pk}/top-up/", {"amount": "100"},
                    format="json").status_code == 403
    assert api.delete(f"/api/v1/certificates/{cert.pk}/").status_code == 403


def test_an_owner_tops_up_and_manages_hosts(world, owner, as_user):
    api = as_user(owner)
    ca, host = world["ca_account"], world["host"]
    assert api.post(f"/api/v1/ca-accounts/{ca.pk}/top-up/", {"amount": "100"},
                    format="json").status_code == 201
    assert api.patch(f"/api/v1/hosts/{host.pk}/", {"name": "renamed"},
                     format="json").status_code == 200
