"""A run recorded by a real Celery worker running in Japanese, against Pebble and
a target host of the testbed, read in Chromium by an English reader and by a
Japanese one: steps, their details and the run's error in each reader's
language. Screenshots (both languages, wide and phone) go to test-artifacts/."""

import re
import time
from decimal import Decimal

import pytest
from django.utils import translation

from certificates.models import DepositEntry, RenewalRun
from certificates.renewal import scheduling
from certificates.renewal.issuance import run_issuance
from certificates.tests.browser import PHONE, log_in, shoot
from certificates.tests.factories import ca_account, http01_certificate, portal_host

pytestmark = pytest.mark.django_db(transaction=True)

JAPANESE = re.compile(r"[\u3040-\u30ff\u4e00-\u9fff]")


def ended(run_id, timeout=90):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run = RenewalRun.objects.get(pk=run_id)
        if run.status not in RenewalRun.OPEN:
            return run
        time.sleep(0.25)
    pytest.fail(f"run {run_id} did not end within {timeout}s")


@pytest.fixture
def runs_in_japanese(organization, owner, viewer, pebble, target_host, settings,
                     celery_processes):
    """A renewal carried through by a worker whose language is Japanese, and a
    failure at the CA recorded in Japanese."""
    settings.ACME_CA_BUNDLE = str(pebble.ca_bundle)
    celery_processes.worker(ACME_CA_BUNDLE=pebble.ca_bundle, DEPLOY_TLS_GRACE_SECONDS=10,
                            LANGUAGE_CODE="ja")
    ca = ca_account(organization, name="Pebble", directory_url=pebble.directory_url)
    assert (ca.price, ca.currency) == (Decimal("1100"), "JPY")
    DepositEntry.objects.create(ca_account=ca, kind="topup", amount=Decimal("10000"),
                                reference="browser-topup", created_by=owner)
    host = portal_host(organization, target_host)
    issued = http01_certificate(organization, ca, host, [target_host.name])
    succeeded = ended(scheduling.renew_now(certificate_id=issued.pk, by=owner).pk)
    assert succeeded.status == RenewalRun.Status.SUCCEEDED, succeeded.error
    # The CA looks for nowhere.example.test where no web server answers.
    refused = http01_certificate(organization, ca, host, ["nowhere.example.test"])
    with translation.override("ja"):
        failed = run_issuance(certificate_id=refused.pk)
    assert failed.status == RenewalRun.Status.FAILED
    return {"succeeded": succeeded, "failed": failed}


def step_texts(page):
    return page.locator("[data-steps]").inner_text()


def test_a_run_recorded_in_japanese_reads_in_english_and_in_japanese(
        open_page, runs_in_japanese):
    succeeded, failed = runs_in_japanese["succeeded"], runs_in_japanese["failed"]
    assert succeeded.steps.filter(detail_key="issue.stored").exists()

    english = open_page(locale="en-US")
    log_in(english, "viewer")
    english.goto(f"/runs/{succeeded.pk}/")
    steps = step_texts(english)
    assert "Private key" in steps and "Served certificate check" in steps
    assert "Configuration test" in steps and "Account registered." in steps
    assert "Charged ¥1,100." in steps and "valid until" in steps
    assert not JAPANESE.search(steps), steps
    shoot(english, "run-recorded-in-japanese-en")
    english.goto(f"/runs/{failed.pk}/")
    error = english.text_content("#run-error")
    assert "The CA could not connect to the server to check the challenge." in error
    assert not JAPANESE.search(error), error
    shoot(english, "run-failed-recorded-in-japanese-en")

    japanese = open_page(locale="ja-JP")
    log_in(japanese, "viewer")
    japanese.goto(f"/runs/{succeeded.pk}/")
    steps = step_texts(japanese)
    assert "Private key" not in steps and "Account registered." not in steps
    assert "1,100円" in steps and JAPANESE.search(steps)
    shoot(japanese, "run-recorded-in-japanese-ja")
    japanese.goto(f"/runs/{failed.pk}/")
    error = japanese.text_content("#run-error")
    assert JAPANESE.search(error) and "The CA could not" not in error
    shoot(japanese, "run-failed-recorded-in-japanese-ja")

    for locale, language in (("en-US", "en"), ("ja-JP", "ja")):
        phone = open_page(viewport=PHONE, locale=locale)
        log_in(phone, "viewer")
        phone.goto(f"/runs/{succeeded.pk}/")
        width = phone.evaluate("document.documentElement.scrollWidth")
        assert width <= PHONE["width"], f"{language}: the page is {width} px wide"
        shoot(phone, f"run-recorded-in-japanese-{language}-phone")
