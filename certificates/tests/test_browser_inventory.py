"""The inventory in Chromium (browser.py), in Japanese and English: a PEM file
uploaded, the one list of managed and unmanaged certificates, the dashboard's
timeline with both, an endpoint's history; screenshots of each."""

import datetime

import pytest
from django.utils import timezone

from certificates.models import (
    Discovery,
    EndpointCheck,
    InventoryCertificate,
    MonitoredEndpoint,
)
from certificates.tests import pki
from certificates.tests.browser import PHONE, WIDE, log_in, shoot
from certificates.tests.factories import issued_world, unmanaged_rows

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def inventory(organization, owner, tmp_path):
    world = issued_world(organization, tmp_path)
    rows = unmanaged_rows(organization, 12)
    InventoryCertificate.objects.filter(pk=rows[0].pk).update(
        expires_at=timezone.now() + datetime.timedelta(days=20))
    InventoryCertificate.objects.filter(pk=rows[1].pk).update(status="found")
    endpoint = rows[0].endpoints.get()
    problems = [{"code": "untrusted", "params": {"reason": "unable to get local issuer"}}]
    MonitoredEndpoint.objects.filter(pk=endpoint.pk).update(result="problem", problems=problems)
    EndpointCheck.objects.create(endpoint=endpoint, result="ok",
                                 fingerprint_sha256="cd" * 32,
                                 checked_at=timezone.now() - datetime.timedelta(days=1))
    EndpointCheck.objects.create(endpoint=endpoint, result="problem", changed=True,
                                 fingerprint_sha256="ab" * 32, problems=problems)
    # A discovery that ended (a running one reloads its page every two seconds).
    done = Discovery.objects.create(organization=organization, targets="192.0.2.0/28",
                                    ports="443 587/smtp", status="done", total=32, checked=32,
                                    served=2, requested_by=owner, finished_at=timezone.now())
    done.findings.add(rows[1])
    MonitoredEndpoint.objects.create(organization=organization, address="mail.example.test",
                                     port=587, protocol="smtp", certificate=rows[2],
                                     result="ok")
    return {**world, "unmanaged": rows[0], "endpoint": endpoint, "discovery": done}


@pytest.mark.parametrize("language", ["ja", "en"])
def test_the_inventory_pages_in_each_language(open_page, inventory, owner, language,
                                              tmp_path):
    owner.language = language
    owner.save(update_fields=["language"])
    page = open_page(viewport=WIDE, locale="ja-JP" if language == "ja" else "en-US")
    log_in(page, "owner")

    key, cert = pki.self_signed(f"upload-{language}.example.test")
    upload = tmp_path / "upload.pem"
    upload.write_text(cert + key)
    page.goto("/inventory/import/")
    page.set_input_files("#id_files", str(upload))
    with page.expect_navigation():
        page.click("#import-form button[type=submit]")
    assert page.url.endswith("/inventory/")
    assert InventoryCertificate.objects.filter(
        common_name=f"upload-{language}.example.test").exists()

    assert page.locator("#inventory-table .inventory-row.issued").count() == 1
    assert page.locator("#inventory-table .inventory-row.imported").count() >= 1
    assert page.locator("#inventory-table .inventory-row.discovered").count() >= 1
    shoot(page, f"inventory-{language}")

    page.goto("/")
    assert page.locator("svg.timeline .mark.unmanaged").count() >= 1
    # The endpoint that does not verify is among the open problems, linking to it.
    watched = inventory["endpoint"].pk
    problem = page.locator(f"#problems .endpoint-problem[data-endpoint='{watched}']")
    assert problem.locator(f"a[href='/endpoints/{watched}/']").count() == 1
    assert page.locator("#count-unmanaged .stat-count").inner_text() != "0"
    shoot(page, f"inventory-dashboard-{language}")

    page.goto(f"/inventory/{inventory['unmanaged'].pk}/")
    shoot(page, f"inventory-certificate-{language}")
    page.goto(f"/endpoints/{inventory['endpoint'].pk}/")
    assert page.locator("#history .check-row").count() == 2
    assert page.locator("#history .check-row.changed").count() == 1
    shoot(page, f"inventory-endpoint-{language}")
    page.goto("/inventory/discover/")
    shoot(page, f"inventory-discovery-{language}")
    page.goto(f"/inventory/discover/{inventory['discovery'].pk}/")
    assert page.locator("#findings .finding-row").count() == 1
    shoot(page, f"inventory-discovery-run-{language}")
    page.goto("/endpoints/")
    protocols = page.locator("#endpoint-table .endpoint-protocol").all_inner_texts()
    assert len(protocols) == MonitoredEndpoint.objects.count() and len(set(protocols)) == 2
    shoot(page, f"inventory-endpoints-{language}")


def test_the_inventory_list_on_a_phone(open_page, inventory, owner):
    page = open_page(viewport=PHONE, locale="ja-JP")
    log_in(page, "owner")
    page.goto("/inventory/?source=elsewhere")
    assert page.locator("#inventory-table .inventory-row.issued").count() == 0
    shoot(page, "inventory-ja-phone")
