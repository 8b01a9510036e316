"""Pages stay fast with many certificates: the number of SQL queries a page runs
does not grow with the rows (10,000 certificates here)."""

import datetime
import random
import re
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from certificates.models import (
    Certificate,
    Deployment,
    DepositEntry,
    Discovery,
    EndpointCheck,
    Heartbeat,
    InventoryCertificate,
    MonitoredEndpoint,
    Order,
    RenewalRun,
)
from certificates.tests.factories import ca_account, host, stored_version, unmanaged_rows
from certificates.tests.pki import self_signed, ssh_keypair

pytestmark = pytest.mark.django_db

MANY = 10_000
# Generous but fixed: a page that ran one query per row would need thousands.
# The dashboard needs the most: its managed part, and the certificates managed
# elsewhere (their counts, their timeline lane in two, the endpoints with problems
# counted, and listed among the open problems with their count).
MAX_QUERIES = 30


def fill(organization, tmp_path, count):
    """`count` certificates in every state, with deployments, runs and versions."""
    rng = random.Random(count)
    now = timezone.now()
    ca = ca_account(organization, low_balance_threshold=Decimal("1000000"))
    DepositEntry.objects.create(ca_account=ca, kind="topup", amount=Decimal("50000"),
                                reference=f"fill-{count}")
    login_key, host_key = ssh_keypair(tmp_path, f"fill-{count}")
    hosts = [host(organization, login_key, host_key, name=f"web{i}") for i in range(5)]
    certificates = Certificate.objects.bulk_create([
        Certificate(
            organization=organization, ca_account=ca, common_name=f"c{i}.example.test",
            sans=[f"c{i}.example.test"],
            expires_at=now + datetime.timedelta(days=rng.randint(-10, 400)),
            renew_after=now + datetime.timedelta(days=rng.randint(-20, 300)),
            failure_count=1 if i % 97 == 0 else 0,
        ) for i in range(count)
    ])
    Deployment.objects.bulk_create([
        Deployment(certificate=cert, host=hosts[i % 5], served=(i % 53 != 0))
        for i, cert in enumerate(certificates)
    ])
    RenewalRun.objects.bulk_create([
        RenewalRun(certificate=cert, trigger="schedule",
                   status="failed" if i % 2 else "queued", error="boom")
        for i, cert in enumerate(certificates[:40])
    ])
    unmanaged = unmanaged_rows(organization, count)
    # Some endpoints whose certificate changed lately: open problems of the dashboard.
    EndpointCheck.objects.bulk_create([
        EndpointCheck(endpoint=endpoint, result="ok", changed=True)
        for endpoint in MonitoredEndpoint.objects.filter(organization=organization)[
            :count // 100 + 2]])
    # A discovery that found a share of them.
    discovery = Discovery.objects.create(organization=organization, targets="192.0.2.0/24",
                                         status="running", total=count, checked=count // 2,
                                         errors=[{"kind": "refused", "detail": "no"}])
    discovery.findings.add(*unmanaged[:count // 10])
    key_pem, cert_pem = self_signed()
    first = certificates[0]
    version = stored_version(first, key_pem, cert_pem)
    first.current_version = version
    first.save()
    Order.objects.create(organization=organization, ca_account=ca, certificate=first,
                         product="single", price=ca.price)
    return {"certificate": first, "host": hosts[0], "ca_account": ca,
            "unmanaged": unmanaged[0], "endpoint": unmanaged[0].endpoints.first(),
            "discovery": discovery,
            "run": RenewalRun.objects.filter(certificate=first).first()}


def pages(world):
    return [
        reverse("certificates:dashboard"),
        reverse("certificates:dashboard") + "?range=3",
        reverse("certificates:dashboard") + "?range=all",
        reverse("certificates:certificates"),
        reverse("certificates:certificates") + "?state=due&sort=-expires&page=3",
        reverse("certificates:certificates") + f"?q=c1&host={world['host'].pk}"
                                                f"&ca={world['ca_account'].pk}",
        reverse("certificates:certificates") + "?expiring=400",
        reverse("certificates:certificate", args=[world["certificate"].pk]),
        reverse("certificates:certificate_edit", args=[world["certificate"].pk]),
        reverse("certificates:hosts"),
        reverse("certificates:host", args=[world["host"].pk]),
        reverse("certificates:ca_accounts"),
        reverse("certificates:ca_account", args=[world["ca_account"].pk]),
        reverse("certificates:orders"),
        reverse("certificates:runs"),
        reverse("certificates:members"),
        reverse("certificates:run", args=[world["run"].pk]),
        reverse("certificates:run_steps", args=[world["run"].pk]),
        reverse("certificates:inventory"),
        reverse("certificates:inventory") + "?source=elsewhere&expiring=30&page=3",
        reverse("certificates:inventory") + "?source=issued&q=c1&issuer=CA&sort=-name",
        reverse("certificates:inventory_certificate", args=[world["unmanaged"].pk]),
        reverse("certificates:endpoints"),
        reverse("certificates:endpoints") + "?result=problem",
        reverse("certificates:endpoint", args=[world["endpoint"].pk]),
        reverse("certificates:discovery"),
        reverse("certificates:discovery_run", args=[world["discovery"].pk]),
    ]


def count_queries(client, url):
    with CaptureQueriesContext(connection) as queries:
        response = client.get(url)
    assert response.status_code == 200, url
    return len(queries)


@pytest.fixture
def many(organization, tmp_path):
    return fill(organization, tmp_path, MANY)


def test_with_ten_thousand_certificates_every_page_runs_a_bounded_number_of_queries(
    client, owner, many, django_assert_max_num_queries
):
    client.force_login(owner)
    for url in pages(many):
        with django_assert_max_num_queries(MAX_QUERIES):
            assert client.get(url).status_code == 200, url


def test_the_number_of_queries_does_not_grow_with_the_rows(
    client, owner, organization, other_organization, outsider, tmp_path
):
    few = fill(other_organization, tmp_path, 20)
    # A worker beats, as it does once running: before the first beat the
    # dashboard writes once when it first looks, which is no matter of rows.
    Heartbeat.record()
    client.force_login(outsider)
    small = {url.replace(str(few["certificate"].pk), "X"): count_queries(client, url)
             for url in pages(few)}
    many = fill(organization, tmp_path, 2_000)
    client.force_login(owner)
    large = {url.replace(str(many["certificate"].pk), "X"): count_queries(client, url)
             for url in pages(many)}
    assert list(small.values()) == list(large.values())


def test_with_ten_thousand_certificates_the_timeline_groups_marks_and_still_counts_them_all(
    client, owner, many
):
    from certificates.views import timeline
    from certificates.views.timeline_range import add_months

    client.force_login(owner)
    now = timezone.now()
    end = add_months(timezone.localtime(now), 12)
    # Managed and unmanaged alike: the timeline of the whole inventory; the
    # managed ones without a date ahead (expired, never issued) on the "now" line.
    in_window = (Certificate.objects.filter(expires_at__lte=end).count()
                 + InventoryCertificate.objects.filter(expires_at__gt=now,
                                                       expires_at__lte=end).count())
    assert in_window > timeline.DETAIL_LIMIT
    html = client.get(reverse("certificates:dashboard"), {"range": "12"},
                      HTTP_ACCEPT_LANGUAGE="en").content.decode()
    svg = html[html.index("<svg"):html.index("</svg>")]
    # One mark per week and state (53 weeks touch a year), not one per certificate.
    assert 0 < svg.count("<circle") <= 53 * len(timeline.LANES)
    counted = [int(n) for n in re.findall(r"<title>(\d+) certificates?, ", svg)]
    assert len(counted) == svg.count("<circle") and sum(counted) == in_window
    assert len(html) < 200_000  # it was 1.4 MB with a mark per certificate


def test_on_postgresql_the_lists_search_can_read_the_trigram_indexes(postgresql_only,
                                                                     organization):
    """The list searches with ``icontains`` on the name and the SANs; migration 0009
    indexes exactly those expressions, so a search need not read every row."""
    from certificates.views.certificates import name_contains

    ca = ca_account(organization)
    Certificate.objects.bulk_create([
        Certificate(organization=organization, ca_account=ca, common_name=f"c{i}.example.test",
                    sans=[f"c{i}.example.test", f"www.c{i}.example.test"])
        for i in range(300)] + [
        Certificate(organization=organization, ca_account=ca, common_name="a.example.test",
                    sans=["a.example.test", "needle.example.test"])])
    found = Certificate.objects.filter(name_contains("Needle"))
    with connection.cursor() as cursor:
        # A sequential scan of a small table is cheaper; forbidding it shows
        # whether the indexes can serve the condition at all.
        cursor.execute("SET LOCAL enable_seqscan = off")
        plan = found.explain()
    assert "cert_name_trgm_idx" in plan and "cert_sans_trgm_idx" in plan, plan
    assert [c.common_name for c in found] == ["a.example.test"]


def test_on_postgresql_a_database_user_who_may_not_create_pg_trgm_gets_a_note_not_a_failure(
    postgresql_only, capsys,
):
    """Migration 0009 must not stop a deployment whose database user lacks the
    right to create the extension: searches then read every row, and it says so."""
    import importlib

    from django.apps import apps

    migration = importlib.import_module("certificates.migrations.0009_search_trigram_indexes")
    with connection.cursor() as cursor:
        # All inside the test's transaction, rolled back after it.
        cursor.execute("DROP EXTENSION pg_trgm CASCADE")  # and the two indexes
        cursor.execute("CREATE ROLE portal_no_extension")
        cursor.execute("GRANT CREATE, USAGE ON SCHEMA public TO portal_no_extension")
        cursor.execute("SET LOCAL ROLE portal_no_extension")
        with connection.schema_editor(atomic=False) as editor:
            migration.create_indexes(apps, editor)
        cursor.execute("RESET ROLE")
        cursor.execute("SELECT count(*) FROM pg_indexes WHERE indexname LIKE 'cert_%_trgm_idx'")
        assert cursor.fetchone() == (0,)
        cursor.execute("SELECT 1 FROM certificates_certificate LIMIT 1")  # still usable
    note = capsys.readouterr().err
    assert "pg_trgm extension could not be created" in note and "CREATE EXTENSION" in note
