"""The first day in Chromium (browser.py): the steps to a first certificate on an
empty organisation, the expiry timeline at 24 months, archiving and restoring a
certificate, and the phone's menu button. Screenshots in English and Japanese
and at phone width go to test-artifacts/."""

import datetime

import pytest
from django.utils import timezone

from certificates.models import AuditEvent, Certificate
from certificates.tests.browser import PHONE, log_in, shoot
from certificates.tests.factories import ca_account, certificate

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.mark.parametrize("locale", ["en-US", "ja-JP"])
def test_an_empty_organisation_shows_the_steps_to_its_first_certificate(open_page, owner,
                                                                        organization, locale):
    page = open_page(locale=locale)
    log_in(page, "owner")
    language = locale[:2]
    assert page.get_attribute("html", "lang") == language
    assert page.locator("#setup").is_visible()
    assert page.locator("#setup .checklist li.todo").count() == 4
    assert page.locator("#dashboard-add-certificate").count() == 0
    shoot(page, f"dayone-setup-{language}")
    # Each step leads to where it is done.
    with page.expect_navigation():
        page.click("#setup-ca-account a")
    assert page.url.endswith("/ca-accounts/new/")

    ca_account(organization)
    phone = open_page(viewport=PHONE, locale=locale)
    log_in(phone, "owner")
    assert phone.locator("#setup-ca-account.done").count() == 1
    assert phone.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    shoot(phone, f"dayone-setup-{language}-phone")


@pytest.fixture
def fleet(organization):
    """Certificates over two years, one failing before its first issuance."""
    ca = ca_account(organization)
    now = timezone.now()
    made = {}
    for name, days in (("soon", 20), ("spring", 120), ("autumn", 300), ("next-year", 500),
                       ("far", 690)):
        made[name] = certificate(organization, ca, common_name=f"{name}.example.test",
                                 sans=[f"{name}.example.test"],
                                 expires_at=now + datetime.timedelta(days=days),
                                 renew_after=now + datetime.timedelta(days=days - 30))
    made["failing"] = certificate(organization, ca, common_name="failing.example.test",
                                  sans=["failing.example.test"], failure_count=2)
    return made


@pytest.mark.parametrize("locale", ["en-US", "ja-JP"])
def test_the_timeline_at_twenty_four_months_has_a_mark_for_each(open_page, owner, fleet,
                                                               locale):
    page = open_page(locale=locale)
    log_in(page, "owner")
    with page.expect_navigation():
        page.click("#timeline-range a[data-range='24']")
    assert page.get_attribute("#timeline-range a[data-range='24']", "aria-current") == "true"
    assert page.locator("svg.timeline circle.mark").count() == 6
    assert page.locator("svg.timeline circle.mark.failing").count() == 1
    # Labels inside the drawing: none is cut at the right edge.
    svg = page.locator("svg.timeline").bounding_box()
    for box in [label.bounding_box() for label in page.locator(".tick-label").all()]:
        assert box["x"] + box["width"] <= svg["x"] + svg["width"] + 0.5
    shoot(page, f"dayone-timeline-24-{locale[:2]}")

    # On a phone a finger opens a mark: its target is at least 24 px square.
    phone = open_page(viewport=PHONE, locale=locale, has_touch=True)
    log_in(phone, "owner")
    phone.goto("/?range=24")
    target = phone.locator("svg.timeline a", has=phone.locator("title",
                                                               has_text="soon.example.test"))
    box = target.bounding_box()
    assert box["width"] >= 24 and box["height"] >= 24, box
    shoot(phone, f"dayone-timeline-24-{locale[:2]}-phone")
    with phone.expect_navigation():
        phone.tap(f"svg.timeline a[href$='/certificates/{fleet['soon'].pk}/'] rect.hit")
    assert phone.url.endswith(f"/certificates/{fleet['soon'].pk}/")


def test_an_administrator_archives_a_certificate_and_restores_it(open_page, admin, fleet):
    page = open_page()
    log_in(page, "admin")
    autumn = fleet["autumn"]
    page.goto(f"/certificates/{autumn.pk}/")
    with page.expect_navigation():
        page.click("#archive")
    assert page.locator("#archived-badge").is_visible()
    assert page.locator("#renew-now").count() == 0
    shoot(page, "dayone-archived")
    page.goto("/?range=24")
    assert page.locator("svg.timeline circle.mark").count() == 5
    page.goto("/certificates/")
    assert page.locator("#certificate-table", has_text="autumn.example.test").count() == 0
    with page.expect_navigation():
        page.select_option("select[name=state]", "archived")
        page.click(".filter-actions button[type=submit]")
    assert page.locator("#certificate-table tbody tr").count() == 1
    assert "autumn.example.test" in page.text_content("#certificate-table")
    shoot(page, "dayone-archived-list")

    with page.expect_navigation():
        page.click("#certificate-table a.strong")
    with page.expect_navigation():
        page.click("#restore")
    assert page.locator("#renew-now").is_visible()
    autumn.refresh_from_db()
    assert autumn.archived_at is None
    assert list(AuditEvent.objects.filter(certificate=autumn).order_by("pk").values_list(
        "action", flat=True)) == ["certificate_archived", "certificate_restored"]
    assert Certificate.objects.filter(archived_at__isnull=False).count() == 0


@pytest.mark.parametrize("javascript", [True, False], ids=["script", "no-script"])
def test_on_a_phone_the_navigation_is_behind_a_menu_button(open_page, owner, fleet,
                                                           javascript):
    phone = open_page(viewport=PHONE, java_script_enabled=javascript)
    log_in(phone, "owner")
    assert phone.locator("#nav-button").is_visible()
    assert not phone.locator("nav.mainnav").is_visible()
    # The open problems come before the timeline.
    problems = phone.locator("#problems").bounding_box()
    assert problems["y"] < phone.locator("#timeline").bounding_box()["y"]
    assert phone.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    if javascript:
        shoot(phone, "dayone-phone-menu-closed")
    phone.click("#nav-button")
    assert phone.locator("nav.mainnav").is_visible()
    if javascript:
        shoot(phone, "dayone-phone-menu-open")
    with phone.expect_navigation():
        phone.click("nav.mainnav a[href='/hosts/']")
    assert phone.url.endswith("/hosts/")
    assert not phone.locator("nav.mainnav").is_visible()  # closed on the next page


def test_on_a_wide_screen_the_navigation_is_one_row_without_a_button(open_page, owner,
                                                                     organization):
    page = open_page()
    log_in(page, "owner")
    assert not page.locator("#nav-button").is_visible()
    links = page.locator("nav.mainnav a")
    assert links.first.is_visible()
    tops = {round(box["y"]) for box in (link.bounding_box() for link in links.all())}
    assert len(tops) == 1, tops


def test_on_a_phone_the_forecast_keeps_its_column_labels_and_the_ledger_its_notes(
        open_page, owner, organization):
    from decimal import Decimal

    from certificates.models import DepositEntry

    ca = ca_account(organization)
    DepositEntry.objects.create(ca_account=ca, kind="topup", amount=Decimal("5500"),
                                reference="topup-note", note="Invoice 2026-117")
    phone = open_page(viewport=PHONE)
    log_in(phone, "owner")
    phone.goto(f"/ca-accounts/{ca.pk}/")
    labels = phone.locator("#forecast-table thead th")
    assert labels.first.is_visible()
    assert [label.strip() for label in labels.all_text_contents()] == ["Within", "Renewals",
                                                                       "Cost"]
    assert phone.locator("#ledger td.reference", has_text="Invoice 2026-117").is_visible()
    assert phone.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    shoot(phone, "dayone-ca-account-phone")
