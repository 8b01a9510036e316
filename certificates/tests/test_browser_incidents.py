"""Incident mode in Chromium (browser.py), against the live server, a real Celery
worker, Pebble and a testbed host serving three certificates: an administrator
chooses certificates by a filter, sees how many, on which hosts and at what
price against the deposit, starts the incident, pauses and resumes it, watches
the progress page refresh itself until every replacement is served and the old
versions revoked, and downloads the report; a deposit too small is refused in
words before anything is ordered. Screenshots in English and Japanese, wide and
at phone width, in test-artifacts/."""

import csv
import datetime
import re
import time
from decimal import Decimal
from pathlib import Path

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from certificates import renewal
from certificates.models import Certificate, DepositEntry, Incident, RenewalRun
from certificates.renewal import deposit
from certificates.tests.browser import PHONE, WIDE, log_in, shoot
from certificates.tests.factories import ca_account, http01_certificate, sites_host

pytestmark = pytest.mark.django_db(transaction=True)

# The progress page refreshes itself every 10 s; Pebble validates, the host reloads.
FINISHED_WITHIN_MS = 180_000


@pytest.fixture
def fleet(organization, admin, pebble, target_host, settings):
    """Three issued certificates on one testbed host ({name} paths), two tagged
    "shop"; a CA account at 100 a certificate whose deposit has exactly 200 left."""
    settings.ACME_CA_BUNDLE = str(pebble.ca_bundle)
    settings.DEPLOY_TLS_GRACE_SECONDS = 10
    names = [f"c{i}.{target_host.name}" for i in range(3)]
    host = sites_host(organization, target_host, names)
    ca = ca_account(organization, name="Pebble", directory_url=pebble.directory_url,
                    price=Decimal("100"), low_balance_threshold=Decimal("0"))
    deposit.top_up(ca_account=ca, amount=Decimal("500"))
    certificates = [http01_certificate(organization, ca, host, [name],
                                       tags="shop" if i < 2 else "mail")
                    for i, name in enumerate(names)]
    for cert in certificates:
        assert renewal.run_inline(certificate_id=cert.pk).status == "succeeded"
    return {"ca": ca, "host": host, "shop": certificates[:2], "mail": certificates[2]}


def fill_filter(page, *, name, tag="", deadline_in=datetime.timedelta(hours=1)):
    page.fill("#id_name", name)
    page.select_option("#id_ca_account", label="Pebble")
    page.fill("#id_tag", tag)
    deadline = timezone.localtime() + deadline_in
    page.fill("#id_deadline", deadline.strftime("%Y-%m-%dT%H:%M"))


def click(page, selector):
    with page.expect_navigation():
        page.click(selector)


def submit_start(page, username):
    """"Start the incident", with the password again if the sign-in is not recent."""
    click(page, "#incident-start")
    if "/reauthenticate/" in page.url:
        page.fill("#id_password", f"pw-{username}")
        click(page, "form.stack button[type=submit]")


def facts(page):
    return {name: page.text_content(f"#incident-{name}").strip()
            for name in ("done", "in-progress", "failing")}


def wait_for_log(process, text, count, timeout=60):
    deadline = time.monotonic() + timeout
    while process.log.read_text().count(text) < count:
        if time.monotonic() > deadline:
            pytest.fail(f"{count} x {text!r} not in the worker's log:\n"
                        f"{process.log.read_text()[-4000:]}")
        time.sleep(0.25)


def fits_the_width(page):
    return page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")


def test_an_administrator_replaces_a_filtered_set_and_follows_it_to_the_end(
    open_page, console, fleet, admin, pebble, target_host, celery_processes, tmp_path
):
    old = {c.pk: Certificate.objects.get(pk=c.pk).current_version for c in fleet["shop"]}
    page = open_page()
    log_in(page, "admin")

    # The filter, and the preview: how many, which hosts, the price against the deposit.
    page.goto("/incidents/")
    click(page, "#incident-new")
    fill_filter(page, name="CA validation bug", tag="shop")
    page.check("#id_revoke_old")
    click(page, "#incident-preview")
    result = page.locator("#incident-preview-result")
    expect(result.locator("h2")).to_have_text("2 certificates would be replaced")
    expect(result).to_contain_text(f"On these hosts: {fleet['host'].name} (2)")
    cells = [c.strip() for c in result.locator("tbody tr td").all_inner_texts()]
    assert cells == ["Pebble", "2", "¥200", "¥200"]  # price, and what the deposit has
    assert not Incident.objects.exists()
    shoot(page, "incident-preview-en")

    # Started with no worker yet: its runs wait in the queue; paused at once.
    submit_start(page, "admin")
    incident = Incident.objects.get()
    assert page.url.endswith(f"/incidents/{incident.pk}/")
    expect(page.locator("#incident-status")).to_have_text("Running")
    assert facts(page) == {"done": "0", "in-progress": "2", "failing": "0"}
    expect(page.locator("#incident-time-left")).to_have_text(re.compile(r"^in \d+ "))
    expect(page.locator("#incident-reserved")).to_have_text("¥200")
    click(page, "#incident-pause")
    expect(page.locator("#incident-status")).to_have_text("Paused")
    shoot(page, "incident-paused-en")

    # A worker takes the runs' messages while it is paused: none of them starts.
    worker = celery_processes.worker(ACME_CA_BUNDLE=pebble.ca_bundle,
                                     DEPLOY_TLS_GRACE_SECONDS=10)
    wait_for_log(worker, "Task certificates.renew[", 2)
    wait_for_log(worker, "succeeded in", 2)
    runs = RenewalRun.objects.filter(incident=incident)
    assert sorted(runs.values_list("status", flat=True)) == ["queued", "queued"]
    assert all(Certificate.objects.get(pk=pk).current_version_id == version.pk
               for pk, version in old.items())

    # Resumed: the page follows by itself (it refreshes) until the end.
    click(page, "#incident-resume")
    expect(page.locator("#incident-status")).to_have_text("Running")
    expect(page.locator("#incident-status")).to_have_text("Completed",
                                                           timeout=FINISHED_WITHIN_MS)
    assert facts(page) == {"done": "2", "in-progress": "0", "failing": "0"}
    expect(page.locator("#incident-revoked")).to_have_text("2")
    expect(page.locator("#incident-progress h2")).to_have_text("2 of 2 replaced (100 %)")
    assert page.locator("meta[http-equiv=refresh]").count() == 0  # nothing left to follow
    shoot(page, "incident-completed-en")
    for cert in fleet["shop"]:
        cert.refresh_from_db()
        target_host.wait_for_served_leaf(cert.current_version.fingerprint_sha256,
                                         name=cert.common_name)
        assert pebble.cert_status(old[cert.pk].serial_hex)["Status"] == "Revoked"

    # The report, downloaded as a person would.
    with page.expect_download() as download:
        page.click("#incident-report")
    saved = tmp_path / download.value.suggested_filename
    download.value.save_as(saved)
    assert saved.name == f"incident-{incident.pk}.csv"
    rows = list(csv.DictReader(saved.open(encoding="utf-8")))
    assert sorted(row["common_name"] for row in rows) == sorted(
        c.common_name for c in fleet["shop"])
    for row in rows:
        assert row["old_serial"] == old[int(row["certificate"])].serial_hex
        assert row["new_serial"] not in ("", row["old_serial"])
        assert row["replaced_at"] and row["old_version_revoked_at"]
        assert row["hosts"] == fleet["host"].name

    # The deposit has nothing left for the third: refused, in words, before anything
    # is ordered.
    runs_before = RenewalRun.objects.count()
    page.goto("/incidents/new/")
    fill_filter(page, name="Distrust")
    click(page, "#incident-preview")
    expect(page.locator("#incident-preview-result h2")).to_have_text(
        "3 certificates would be replaced")
    expect(page.locator("#incident-short")).to_have_text(
        "A deposit cannot pay for every replacement: top it up first. "
        "Nothing has been ordered.")
    expect(page.locator("#incident-preview-result")).to_contain_text("¥300 short")
    assert page.locator("#incident-start").count() == 0
    shoot(page, "incident-deposit-short-en")

    # Enough when previewed, spent before the start: refused at the start, in words.
    deposit.top_up(ca_account=fleet["ca"], amount=Decimal("100"))
    fill_filter(page, name="Mail", tag="mail")
    click(page, "#incident-preview")
    DepositEntry.objects.create(ca_account=fleet["ca"], kind=DepositEntry.Kind.CHARGE,
                                amount=Decimal("-100"), reference="charge:meanwhile")
    submit_start(page, "admin")
    expect(page.locator("#incident-error")).to_have_text(
        "The deposit cannot pay for every replacement; nothing was ordered. "
        "Missing: Pebble ¥100.")
    assert Incident.objects.count() == 1 and RenewalRun.objects.count() == runs_before
    assert fleet["ca"].reserved() == 0
    # The refused start answers 409, which Chromium reports; nothing else may.
    assert console.errors == [
        "Failed to load resource: the server responded with a status of 409 (Conflict)"]
    console.errors.clear()

    # The progress page at phone width; then the pages in Japanese, wide and narrow.
    page.set_viewport_size(PHONE)
    page.goto(f"/incidents/{incident.pk}/")
    assert fits_the_width(page)
    shoot(page, "incident-completed-en-phone")
    page.set_viewport_size(WIDE)
    admin.language = "ja"
    admin.save(update_fields=["language"])
    for size, suffix in ((WIDE, "ja"), (PHONE, "ja-phone")):
        page.set_viewport_size(size)
        page.goto(f"/incidents/{incident.pk}/")
        assert page.get_attribute("html", "lang") == "ja"
        expect(page.locator("#incident-done")).to_have_text("2")
        shoot(page, f"incident-completed-{suffix}")
        page.goto("/incidents/")
        shoot(page, f"incidents-{suffix}")
        page.goto("/incidents/new/")
        fill_filter(page, name="Distrust")
        click(page, "#incident-preview")
        expect(page.locator("#incident-short")).to_be_visible()
        expect(page.locator("#incident-preview-result")).to_contain_text("300円")
        shoot(page, f"incident-deposit-short-{suffix}")
        assert fits_the_width(page)
    page.goto(f"/incidents/{incident.pk}/")
    assert fits_the_width(page)
    for name in ("incident-completed-ja-phone", "incident-deposit-short-ja-phone"):
        assert (Path(__file__).resolve().parents[2] / "test-artifacts" / f"{name}.png").exists()
