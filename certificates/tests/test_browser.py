"""The portal in a real browser: Debian's Chromium driven by Playwright, against
the live server, a real Celery worker, Pebble and a target host of the testbed.

Every test fails on any error in the browser's console, a refusal by the
Content-Security-Policy included (browser.py). Screenshots of the
dashboard, the list and the detail page (wide and phone) are kept in
test-artifacts/.
"""

import re
from decimal import Decimal

import pytest

from accounts.models import Membership, Role
from certificates.models import Certificate, DepositEntry, RenewalRun, TargetHost
from certificates.steps import Step
from certificates.tests.browser import PHONE, log_in, shoot
from certificates.tests.factories import ca_account, issued_world, portal_host

pytestmark = pytest.mark.django_db(transaction=True)

@pytest.fixture
def renewing_world(organization, owner, pebble, target_host, settings, celery_processes):
    settings.ACME_CA_BUNDLE = str(pebble.ca_bundle)
    celery_processes.worker(ACME_CA_BUNDLE=pebble.ca_bundle, DEPLOY_TLS_GRACE_SECONDS=10)
    ca = ca_account(organization, name="Pebble", directory_url=pebble.directory_url,
                    low_balance_threshold=Decimal("3000"))
    DepositEntry.objects.create(ca_account=ca, kind="topup", amount=Decimal("10000"),
                                reference="browser-topup", created_by=owner)
    # Enrolled in the browser: the host key is neither pinned nor confirmed yet.
    host = portal_host(organization, target_host)
    TargetHost.objects.filter(pk=host.pk).update(host_key="", host_key_fingerprint="",
                                                  host_key_confirmed_at=None)
    return {"ca": ca, "host": host}


def test_an_owner_enrols_a_host_adds_a_certificate_and_watches_it_renew_live(
    open_page, renewing_world, target_host
):
    page = open_page()
    log_in(page, "owner")
    host = renewing_world["host"]

    # Enrolment: fetch the host key, compare, confirm, test the connection.
    page.goto(f"/hosts/{host.pk}/")
    with page.expect_navigation():
        page.click("#fetch-host-key")
    fingerprint = page.text_content("#fingerprint").strip()
    assert fingerprint == target_host.host_key_fingerprint
    page.fill("#id_fingerprint", fingerprint)
    with page.expect_navigation():
        page.click("#confirm-host-key")
    with page.expect_navigation():
        page.click("#test-connection")
    checks = page.locator("#checks .check")
    assert checks.count() >= 3
    assert page.locator("#checks .check.bad").count() == 0, page.text_content("#checks")
    shoot(page, "host-connection-test")

    # A wildcard with HTTP-01 is refused next to the challenge field; then the real one.
    page.goto("/certificates/")
    with page.expect_navigation():
        page.click("#add-certificate")
    page.fill("#id_common_name", "*.example.test")
    page.select_option("#id_ca_account", label="Pebble")
    with page.expect_navigation():
        page.click("#save")
    assert "dns-01" in page.text_content("#id_challenge_errors")
    page.fill("#id_common_name", target_host.name)
    page.check(f"input[name=hosts][value='{host.pk}']")
    with page.expect_navigation():
        page.click("#save")
    certificate = Certificate.objects.get(common_name=target_host.name)
    assert page.url.endswith(f"/certificates/{certificate.pk}/")
    assert "Not issued yet" in page.text_content("h1")

    # Renew now asks first; confirmed, the run page follows the steps as they
    # happen, without reloading.
    with page.expect_navigation():
        page.click("#renew-now")
    assert page.locator("#renew-confirm").count() == 1
    with page.expect_navigation():
        page.click("#renew-confirm-button")
    assert re.search(r"/runs/\d+/$", page.url)
    page.evaluate("window.stillTheSamePage = true")
    page.wait_for_selector("[data-steps] .step-name:text-is('Order')", timeout=60_000)
    page.wait_for_selector("#run[data-status=succeeded], #run[data-status=failed]",
                           timeout=120_000)
    run = RenewalRun.objects.get(certificate=certificate)
    assert run.status == RenewalRun.Status.SUCCEEDED, (run.error, page.text_content("#run"))
    assert page.evaluate("window.stillTheSamePage") is True
    names = page.locator("[data-steps] .step-name").all_text_contents()
    for step in ("order", "challenge", "validation", "finalize", "store"):
        assert str(Step(step).label) in names  # in words, in the page's language
    assert page.locator("#run-spinner.hidden").count() == 1
    shoot(page, "renewal-run")

    # The certificate page: valid, served on the host, every version and run.
    page.goto(f"/certificates/{certificate.pk}/")
    assert "Valid" in page.text_content("h1")
    assert "served" in page.text_content("table.list")
    assert page.locator("#days-left").is_visible()
    shoot(page, "certificate-detail")
    page.goto("/certificates/")
    shoot(page, "certificate-list")
    page.goto("/")
    # Pebble's certificates last five years: the timeline reaches them by default.
    # A lane for each state of the cards, and one of those managed elsewhere.
    assert page.locator("svg.timeline .lane").count() == 8
    assert page.get_attribute("#timeline-range a[aria-current]", "data-range") == "all"
    assert page.locator("svg.timeline circle.mark.valid").count() == 1
    assert page.locator("#count-valid .stat-count").text_content().strip() == "1"
    shoot(page, "dashboard")

    # The same pages on a phone.
    phone = open_page(viewport=PHONE)
    log_in(phone, "owner")
    for path, name in [("/", "dashboard"), ("/certificates/", "certificate-list"),
                       (f"/certificates/{certificate.pk}/", "certificate-detail")]:
        phone.goto(path)
        width = phone.evaluate("document.documentElement.scrollWidth")
        assert width <= PHONE["width"], f"{path} scrolls sideways on a phone ({width} px)"
        shoot(phone, f"{name}-phone")


@pytest.fixture
def quiet_world(organization, tmp_path):
    return issued_world(organization, tmp_path)


def test_the_language_switch_turns_the_pages_japanese_and_is_remembered(
    open_page, quiet_world, owner
):
    page = open_page()
    log_in(page, "owner")
    assert page.get_attribute("html", "lang") == "en"
    with page.expect_navigation():
        page.select_option("#language-select", "ja")
    assert page.get_attribute("html", "lang") == "ja"
    assert "証明書" in page.text_content("nav.mainnav")
    assert "CA アカウント" in page.text_content("nav.mainnav")
    shoot(page, "dashboard-ja")
    page.goto("/certificates/")
    assert "証明書" in page.text_content("h1")
    owner.refresh_from_db()
    assert owner.language == "ja"
    # Remembered: a new browser that asks for English still gets Japanese once signed in.
    other = open_page(locale="en-US")
    log_in(other, "owner")
    assert other.get_attribute("html", "lang") == "ja"
    other.click(".usermenu summary")
    assert other.locator("#logout").text_content().strip() == "ログアウト"


def test_a_viewer_has_no_actions_and_an_outsider_gets_404(
    open_page, quiet_world, viewer, outsider, console
):
    certificate = quiet_world["certificate"]
    page = open_page()
    log_in(page, "viewer")
    page.goto(f"/certificates/{certificate.pk}/")
    assert certificate.common_name in page.text_content("h1")
    for action in ("#renew-now", "#deploy-now", "#edit", "#add-certificate"):
        assert page.locator(action).count() == 0, action
    assert page.locator("form[action$='/download/key/']").count() == 0
    page.goto(f"/ca-accounts/{quiet_world['ca_account'].pk}/")
    assert page.locator("#top-up-submit").count() == 0

    stranger = open_page()
    log_in(stranger, "outsider")
    for path in (f"/certificates/{certificate.pk}/", f"/hosts/{quiet_world['host'].pk}/",
                 f"/runs/{quiet_world['run'].pk}/"):
        response = stranger.goto(path)
        assert response.status == 404, path
        assert stranger.locator("#not-found").is_visible()
        assert certificate.common_name not in stranger.content()
    # The browser reports each refused page in its console; those are the point here.
    console.errors[:] = [e for e in console.errors if "404" not in e]


def test_logging_out_and_changing_the_password(open_page, owner, organization):
    page = open_page()
    log_in(page, "owner")
    page.goto("/accounts/password/")
    page.fill("#id_old_password", "pw-owner")
    page.fill("#id_new_password1", "Fuji-san-3776m")
    page.fill("#id_new_password2", "Fuji-san-3776m")
    with page.expect_navigation():
        page.click("main button[type=submit]")
    page.click(".usermenu summary")
    with page.expect_navigation():
        page.click("#logout")
    assert "/accounts/login/" in page.url
    owner.refresh_from_db()
    assert owner.check_password("Fuji-san-3776m")


def test_a_person_is_invited_joins_and_the_audit_log_shows_it(open_page, owner, organization,
                                                              settings):
    from django.core import mail

    settings.PORTAL_BASE_URL = "http://testserver.invalid"
    page = open_page()
    log_in(page, "owner")
    page.goto("/members/")
    page.fill("#id_email", "newcomer@example.test")
    page.select_option("#id_role", "operator")
    page.select_option("#id_language", "ja")
    with page.expect_navigation():
        page.click("#invite-member")
    assert "newcomer@example.test" in page.text_content("#invitations")
    shoot(page, "members-invitations")

    [message] = mail.outbox
    path = re.search(r"http://testserver\.invalid(/invitations/[^/\s]+/)", message.body).group(1)
    newcomer = open_page(locale="ja-JP")
    newcomer.goto(path)
    newcomer.fill("#id_username", "newcomer")
    newcomer.fill("#id_password1", "Kiri-no-mori-77")
    newcomer.fill("#id_password2", "Kiri-no-mori-77")
    shoot(newcomer, "invitation-accept")
    with newcomer.expect_navigation():
        newcomer.click("#create-account")
    log_in_as = {"username": "newcomer", "password": "Kiri-no-mori-77"}
    newcomer.fill("#id_login", log_in_as["username"])
    newcomer.fill("#id_password", log_in_as["password"])
    with newcomer.expect_navigation():
        newcomer.click("#login")
    assert newcomer.url.endswith("/")
    assert Membership.objects.get(user__username="newcomer").role == Role.OPERATOR

    page.goto("/audit/")
    table = page.text_content("#audit")
    assert "Invitation sent" in table and "Invitation accepted" in table
    shoot(page, "audit-log")
    page.set_viewport_size(PHONE)
    shoot(page, "audit-log-phone")


def test_the_policy_refuses_an_inline_style_and_the_console_says_so(
        open_page, quiet_world, owner, console):
    page = open_page()
    log_in(page, "owner")
    page.goto(f"/certificates/{quiet_world['certificate'].pk}/")
    with page.expect_console_message(lambda m: m.text.startswith("CSP violation")):
        page.evaluate("""() => {
            const style = document.createElement("style");
            style.textContent = "body { display: none; }";
            document.head.appendChild(style);
        }""")
    assert page.locator("h1").is_visible()  # the injected rule was not applied
    refused = [e for e in console.errors if e.startswith("CSP violation: style-src")]
    assert refused, console.errors
    console.errors[:] = [e for e in console.errors if e not in refused
                         and "Content Security Policy" not in e]


def test_the_api_documentation_works_under_the_policy(open_page, quiet_world, owner):
    page = open_page()
    log_in(page, "owner")
    page.goto("/api/docs/")
    page.wait_for_selector(".swagger-ui .info .title")
    assert "Certificate portal API" in page.text_content(".swagger-ui .info .title")
    page.wait_for_selector(".opblock-tag-section")


def test_the_browsable_api_works_under_the_policy(open_page, quiet_world, owner, console):
    page = open_page()
    log_in(page, "owner")
    response = page.goto(f"/api/v1/certificates/{quiet_world['certificate'].pk}/")
    policy = response.header_value("Content-Security-Policy")
    assert "script-src 'self';" in policy + ";"  # only styles are relaxed there
    assert quiet_world["certificate"].common_name in page.text_content(".response-info")
    page.click("#extra-actions-menu")
    assert page.locator(".dropdown-menu a").count() >= 1
    # DRF's page names no icon, so the browser asks for /favicon.ico, which is a 404.
    console.errors[:] = [e for e in console.errors if "status of 404" not in e]
