"""The portal in Debian's Chromium, driven by Playwright against the live server:
the browser, a watch on its console, a page opener, signing in and screenshots.

A pytest plugin (the root conftest.py names it), so that the browser tests of
every app share one set-up. A page fails its test on any error in the browser's
console, a refusal by the Content-Security-Policy included.
"""

import os
import shutil
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"
# Keep Chromium off the network (TESTBED.md, "A real browser").
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
WIDE, PHONE = {"width": 1280, "height": 900}, {"width": 390, "height": 844}


@pytest.fixture(scope="module")
def browser():
    if not shutil.which(CHROMIUM):
        pytest.fail("chromium is missing: apt-get install chromium (Debian package chromium)")
    from playwright.sync_api import sync_playwright

    # Playwright's sync API keeps an event loop running in this thread, so Django
    # would refuse the test's own (synchronous) database calls. Allowed for the
    # test module using it only: left set, it would reach `check --deploy` in
    # later tests.
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    ARTIFACTS.mkdir(exist_ok=True)
    try:
        with sync_playwright() as playwright:
            chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
            yield chromium
            chromium.close()
    finally:
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


# Run before any script of the page, and not subject to its policy: every
# refusal by the Content-Security-Policy becomes a console error.
REPORT_CSP_VIOLATIONS = """
document.addEventListener("securitypolicyviolation", function (event) {
  console.error("CSP violation: " + event.violatedDirective + " " + event.blockedURI
                + " " + event.sourceFile + ":" + event.lineNumber);
});
"""


class Console:
    """Every console error, uncaught exception and CSP violation of a page; the
    test fails on any."""

    def __init__(self):
        self.errors = []

    def watch(self, page):
        page.add_init_script(REPORT_CSP_VIOLATIONS)
        page.on("console", lambda m: m.type == "error" and self.errors.append(m.text))
        page.on("pageerror", lambda exc: self.errors.append(str(exc)))
        return page


@pytest.fixture
def console():
    watcher = Console()
    yield watcher
    assert watcher.errors == [], f"errors in the browser console: {watcher.errors}"


@pytest.fixture
def open_page(browser, live_server, console):
    contexts = []

    def opener(*, viewport=WIDE, locale="en-US", **options):
        """`options`: more of Playwright's context options (has_touch, java_script_enabled)."""
        context = browser.new_context(viewport=viewport, locale=locale,
                                      base_url=live_server.url, **options)
        context.set_default_timeout(15_000)
        contexts.append(context)
        return console.watch(context.new_page())

    yield opener
    for context in contexts:
        context.close()


def password_step(page, username):
    """The first step of signing in: the persona's name and password."""
    page.goto("/accounts/login/")
    page.fill("#id_login", username)
    page.fill("#id_password", f"pw-{username}")
    with page.expect_navigation():
        page.click("#login")


def log_in(page, username):
    """Password, then (for people who have one) the authenticator app's code."""
    password_step(page, username)
    if "/accounts/2fa/authenticate/" in page.url:
        from django.contrib.auth import get_user_model

        from accounts.tests.factors import second_factor

        page.fill("#id_code", second_factor(get_user_model().objects.get(username=username)))
        with page.expect_navigation():
            page.click("form.stack button[type=submit]")


def shoot(page, name):
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
