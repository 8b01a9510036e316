"""Tokens: hashed at rest, scoped, refused once revoked or expired, managed in the UI."""

from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from api.models import APIToken

from .conftest import client_for, make_token

pytestmark = pytest.mark.django_db


def test_a_token_is_not_stored_in_clear(owner):
    token, raw = make_token(owner)
    secret = raw.split("_", 2)[2]
    with connection.cursor() as cursor:
        cursor.execute("SELECT * FROM api_apitoken")
        rows = cursor.fetchall()
    dump = repr(rows)
    assert secret not in dump and raw not in dump
    assert token.secret_hash in dump  # the SHA-256, and only that


def test_a_valid_token_reads_and_records_its_last_use(owner, world):
    token, raw = make_token(owner)
    response = client_for(raw).get("/api/v1/certificates/")
    assert response.status_code == 200
    token.refresh_from_db()
    assert token.last_used_at is not None


def test_a_revoked_token_is_refused(owner, world):
    token, raw = make_token(owner)
    APIToken.objects.filter(pk=token.pk).update(revoked_at=timezone.now())
    response = client_for(raw).get("/api/v1/certificates/")
    assert response.status_code == 401
    assert response.json()["errors"][0]["message"]


def test_an_expired_token_is_refused(owner, world):
    token, raw = make_token(owner, expires_at=timezone.now() - timedelta(seconds=1))
    assert client_for(raw).get("/api/v1/certificates/").status_code == 401


@pytest.mark.parametrize("raw", ["fjp_nope_nope", "garbage", "fjp__x", "fjp_abc_"])
def test_an_unknown_or_malformed_token_is_refused(raw, world):
    response = client_for(raw).get("/api/v1/certificates/")
    assert response.status_code == 401
    assert response.json()["errors"][0]["code"] == "authentication_failed"


def test_a_token_with_a_wrong_secret_is_refused(owner):
    token, raw = make_token(owner)
    assert client_for(raw[:-2] + "xx").get("/api/v1/certificates/").status_code == 401


def test_no_credentials_is_401(client, world):
    response = client.get("/api/v1/certificates/")
    assert response.status_code == 401


def test_a_read_only_token_cannot_write(owner, world):
    _token, raw = make_token(owner, scopes=["read"])
    api = client_for(raw)
    cert = world["certificate"]
    attempts = [
        api.post(f"/api/v1/certificates/{cert.pk}/renew/"),
        api.patch(f"/api/v1/certificates/{cert.pk}/", {"auto_renew": False}, format="json"),
        api.delete(f"/api/v1/certificates/{cert.pk}/"),
        api.post(f"/api/v1/ca-accounts/{world['ca_account'].pk}/top-up/", {"amount": "10"},
                 format="json"),
        api.delete(f"/api/v1/hosts/{world['host'].pk}/"),
    ]
    for response in attempts:
        assert response.status_code == 403, response.content
        assert "write" in response.json()["errors"][0]["message"]
    cert.refresh_from_db()
    assert cert.auto_renew is True
    assert not cert.runs.filter(trigger="api").exists()


def test_a_write_only_token_cannot_read(owner, world):
    _token, raw = make_token(owner, scopes=["write"])
    assert client_for(raw).get("/api/v1/certificates/").status_code == 403


def test_the_browsable_api_works_with_a_session(client, owner, world):
    client.force_login(owner)
    response = client.get("/api/v1/certificates/", HTTP_ACCEPT="text/html")
    assert response.status_code == 200
    assert world["certificate"].common_name in response.content.decode()
    for name, key in [("certificates", "certificate"), ("hosts", "host"),
                      ("deployments", "deployment"), ("runs", "run"),
                      ("ca-accounts", "ca_account"), ("orders", "order")]:
        for url in (f"/api/v1/{name}/", f"/api/v1/{name}/{world[key].pk}/"):
            assert client.get(url, HTTP_ACCEPT="text/html").status_code == 200, url


def test_a_session_needs_the_csrf_token_to_write(owner, world):
    from django.test import Client

    client = Client(enforce_csrf_checks=True)
    client.force_login(owner)
    response = client.post(f"/api/v1/certificates/{world['certificate'].pk}/renew/")
    assert response.status_code == 403


def test_the_token_page_shows_a_new_token_once_and_stores_only_its_hash(client, owner):
    client.force_login(owner)
    response = client.post("/api/tokens/", {"name": "inventory", "scopes": ["read"],
                                            "lifetime": "30"})
    assert response.status_code == 200
    raw = response.context["created"]
    assert raw in response.content.decode()
    token = APIToken.objects.get(user=owner)
    assert token.scopes == ["read"] and token.matches(raw.split("_", 2)[2])
    assert raw not in client.get("/api/tokens/").content.decode()
    assert client_for(raw).get("/api/v1/certificates/").status_code == 200


def test_the_token_page_revokes_a_token(client, owner):
    token, raw = make_token(owner)
    client.force_login(owner)
    response = client.post(f"/api/tokens/{token.pk}/revoke/")
    assert response.status_code == 302
    token.refresh_from_db()
    assert token.revoked_at is not None
    assert client_for(raw).get("/api/v1/certificates/").status_code == 401


def test_nobody_revokes_another_persons_token(client, owner, outsider):
    token, _raw = make_token(owner)
    client.force_login(outsider)
    assert client.post(f"/api/tokens/{token.pk}/revoke/").status_code == 404
    token.refresh_from_db()
    assert token.revoked_at is None


def test_the_token_page_needs_a_login(client):
    response = client.get("/api/tokens/")
    assert response.status_code == 302


def test_throttling_is_per_token(settings, owner, world):
    settings.API_THROTTLE_RATE = "3/min"
    from django.core.cache import cache

    cache.clear()
    first, second = client_for(make_token(owner)[1]), client_for(make_token(owner)[1])
    codes = [first.get("/api/v1/orders/").status_code for _ in range(4)]
    assert codes == [200, 200, 200, 429]
    throttled = first.get("/api/v1/orders/")
    assert throttled.json()["errors"][0]["code"] == "throttled"
    assert "Retry-After" in throttled
    assert second.get("/api/v1/orders/").status_code == 200
    cache.clear()
