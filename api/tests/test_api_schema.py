"""The OpenAPI schema: valid OpenAPI 3, served with vendored docs, and fuzzed with
schemathesis in-process (bounded, derandomised): no 5xx, no response outside it."""

import json
from contextlib import contextmanager
from datetime import timedelta

import pytest
from django.utils import timezone

from accounts.models import Membership
from api.models import Webhook
from certificates.models import (
    AgentCredential,
    Discovery,
    Incident,
    MonitoredEndpoint,
    NotificationChannel,
    TargetHost,
)

from .conftest import make_token

pytestmark = pytest.mark.django_db

# These talk SSH to the host over the network: covered against a real sshd in
# test_api_endpoints.py, not fuzzed (an unreachable host is a documented 502).
# These reach outside: an SSH host, DNS resolvers (the chains' lookups), or
# what they are given over TLS (covered against the testbed's nginx in
# certificates/tests/test_inventory_end_to_end.py).
# Saving a CA account asks the CA it names (covered against Pebble in
# test_api_ca_accounts.py); a channel's test message goes to the URL it was given.
NOT_FUZZED = {"v1_hosts_fetch_host_key_create", "v1_hosts_test_connection_create",
              "v1_ca_accounts_create", "v1_ca_accounts_update",
              "v1_ca_accounts_partial_update", "v1_channels_test_create",
              "v1_certificates_dns_chains_list",
              "v1_endpoints_create", "v1_endpoints_check_create",
              "v1_inventory_discover_create"}
MAX_EXAMPLES = 12


@pytest.fixture
def schema_json(client):
    response = client.get("/api/schema/", {"format": "json"})
    assert response.status_code == 200
    return json.loads(response.content)


def test_the_schema_validates_as_openapi_3(schema_json):
    from drf_spectacular.validation import validate_schema

    validate_schema(schema_json)
    assert schema_json["openapi"].startswith("3.")


def test_the_schema_documents_every_endpoint_and_its_errors(schema_json):
    paths = schema_json["paths"]
    for suffix in ["certificates/", "certificates/{id}/", "certificates/{id}/renew/",
                   "certificates/{id}/deploy/", "certificates/{id}/versions/",
                   "certificates/{id}/chain/", "certificates/{id}/fullchain/", "hosts/",
                   "hosts/{id}/", "hosts/{id}/test-connection/", "hosts/{id}/confirm-host-key/",
                   "hosts/{id}/fetch-host-key/", "deployments/", "deployments/{id}/", "runs/",
                   "runs/{id}/", "ca-accounts/", "ca-accounts/{id}/",
                   "ca-accounts/{id}/balance/", "ca-accounts/{id}/ledger/",
                   "ca-accounts/{id}/forecast/", "ca-accounts/{id}/top-up/", "orders/",
                   "orders/{id}/", "webhooks/", "webhooks/{id}/", "webhooks/{id}/deliveries/",
                   "dns-credentials/", "dns-credentials/{id}/", "dns-credentials/{id}/test/",
                   "certificates/{id}/dns-chains/", "certificates/{id}/acme-dns/",
                   "inventory/", "inventory/{id}/", "inventory/import/", "inventory/export/",
                   "inventory/discover/", "inventory/{id}/accept/", "inventory/{id}/dismiss/",
                   "inventory/{id}/adopt/",
                   "endpoints/", "endpoints/{id}/", "endpoints/{id}/check/",
                   "endpoints/{id}/checks/", "discoveries/", "discoveries/{id}/",
                   "certificates/{id}/revoke/", "incidents/", "incidents/{id}/",
                   "incidents/preview/", "incidents/{id}/pause/", "incidents/{id}/resume/",
                   "incidents/{id}/report/", "ca-accounts/{id}/test/", "channels/",
                   "channels/{id}/", "channels/{id}/test/", "organizations/",
                   "organizations/{id}/", "members/", "members/{id}/"]:
        assert f"/api/v1/{suffix}" in paths, suffix
    for path, operations in paths.items():
        for method, operation in operations.items():
            codes = set(operation["responses"])
            assert {"400", "401", "403", "404", "429"} <= codes, (method, path)
    names = {p["name"] for p in paths["/api/v1/certificates/"]["get"]["parameters"]}
    assert {"page", "page_size", "search", "expires_before", "ca_account"} <= names
    assert "tokenAuth" in schema_json["components"]["securitySchemes"]


def test_the_docs_pages_are_served_without_a_cdn(client):
    import re

    for url in ("/api/docs/",):
        page = client.get(url).content.decode()
        assert "/static/drf_spectacular_sidecar/" in page, url
        external = re.findall(r"""(?:src|href)\s*=\s*["'](?:https?:)?//[^"']+""", page)
        assert external == [], url
        # The start-up script is a file of its own (the CSP allows no inline script).
        script = client.get(url + "?script=").content.decode()
        assert '"validatorUrl": null' in script  # no schema sent to validator.swagger.io
        for host in ("jsdelivr", "unpkg", "cdnjs"):
            assert host not in page, (url, host)


def test_schemathesis_finds_no_server_error_and_no_response_outside_the_schema(
        owner, organization, tmp_path):
    import schemathesis
    from django.core.wsgi import get_wsgi_application
    from schemathesis.checks import not_a_server_error
    from schemathesis.specs.openapi.checks import (
        content_type_conformance,
        response_schema_conformance,
        status_code_conformance,
    )

    from accounts import invitations
    from certificates.tests.factories import issued_world, unmanaged_rows

    world = issued_world(organization, tmp_path)
    real_ids = {"certificates": world["certificate"].pk, "hosts": world["host"].pk,
                "deployments": world["deployment"].pk, "runs": world["run"].pk,
                "ca-accounts": world["ca_account"].pk, "orders": world["order"].pk,
                "dns-credentials": world["dns_credential"].pk,
                "inventory": unmanaged_rows(organization, 3)[0].pk,
                "endpoints": MonitoredEndpoint.objects.filter(organization=organization)
                .first().pk,
                "webhooks": Webhook.objects.create(
                    organization=organization, url="https://hooks.example.test/",
                    secret="s" * 20, events=["deposit.low"]).pk,
                "invitations": invitations.invite(
                    organization=organization, email="new@example.test", role="viewer",
                    by=owner, language="en")[0].pk,
                "incidents": Incident.objects.create(
                    organization=organization, name="CA bug",
                    deadline=timezone.now() + timedelta(hours=1)).pk,
                "discoveries": Discovery.objects.create(
                    organization=organization, targets="192.0.2.1", total=1).pk,
                "channels": NotificationChannel.objects.create(
                    organization=organization, name="ops", kinds=["expiring"],
                    url="json://hooks.example.test/portal").pk,
                "organizations": organization.pk,
                # The owner's own: every change of it is refused, none takes them out.
                "members": Membership.objects.get(user=owner).pk}
    _token, raw = make_token(owner)
    headers = {"Authorization": f"Bearer {raw}"}
    # The agent protocol's endpoints, with an agent's own credential.
    agent = TargetHost.objects.create(organization=organization, name="agent-fuzz",
                                      transport=TargetHost.Transport.AGENT)
    _credential, agent_token = AgentCredential.issue(agent)
    agent_headers = {"Authorization": f"Bearer {agent_token}"}
    checks = [not_a_server_error, status_code_conformance, content_type_conformance,
              response_schema_conformance]
    with transaction_kept_open():
        schema = schemathesis.openapi.from_wsgi("/api/schema/?format=json",
                                                get_wsgi_application())
        tried = fuzz(schema, checks, headers, real_ids, agent_headers)
    assert tried >= 40


def fuzz(schema, checks, headers, real_ids, agent_headers):
    from schemathesis import GenerationMode

    tried = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        if operation.definition.raw.get("operationId") in NOT_FUZZED:
            continue
        if operation.path.startswith("/agent/"):
            real_id, used = None, agent_headers
        else:
            real_id, used = real_ids[operation.path.split("/")[3]], headers
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            fuzz_one(operation, mode, real_id, checks, used)
            tried += 1
    return tried


def fuzz_one(operation, mode, real_id, checks, headers):
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    @settings(max_examples=MAX_EXAMPLES, derandomize=True, database=None, deadline=None,
              suppress_health_check=list(HealthCheck))
    @given(case=operation.as_strategy(generation_mode=mode), real=st.booleans())
    def run(case, real):
        # Half the cases aim at a real object, so more than 404s are checked.
        if real and "id" in (case.path_parameters or {}):
            case.path_parameters["id"] = real_id
        # A forged Host header is refused by Django itself (ALLOWED_HOSTS), before
        # the API: a plain 400 page, which is right, but not the API's to document.
        for name in [h for h in (case.headers or {}) if h.lower() == "host"]:
            del case.headers[name]
        case.call_and_validate(headers=headers, checks=checks)

    run()


@contextmanager
def transaction_kept_open():
    """Django's WSGI handler closes the connection after each request, which
    would end the test's transaction; its test client does the same as this."""
    from django.core.signals import request_finished, request_started
    from django.db import close_old_connections

    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        yield
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)
