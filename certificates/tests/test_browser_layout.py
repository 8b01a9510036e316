"""Layout in Chromium (browser.py): a long Japanese label keeps its value readable."""

import pytest

from certificates.models import CAAccount
from certificates.tests.browser import PHONE, WIDE, log_in, shoot
from certificates.tests.factories import issued_world

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def registered_account(organization, tmp_path, owner):
    owner.language = "ja"
    owner.save(update_fields=["language"])
    made = issued_world(organization, tmp_path)  # its CA account has an EAB key
    CAAccount.objects.filter(pk=made["ca_account"].pk).update(
        account_url="https://ca.example.test/acme/acct/1")
    return made["ca_account"]


@pytest.mark.parametrize("viewport", [WIDE, PHONE], ids=["wide", "phone"])
def test_the_ca_account_page_in_japanese_keeps_each_value_on_one_line(open_page,
                                                                       registered_account,
                                                                       viewport):
    page = open_page(viewport=viewport, locale="ja-JP")
    log_in(page, "owner")
    page.goto(f"/ca-accounts/{registered_account.pk}/")
    assert page.get_attribute("html", "lang") == "ja"
    value = page.locator("dl.facts dd", has_text="登録済み")
    box = value.bounding_box()
    size = float(value.evaluate("e => parseFloat(getComputedStyle(e).fontSize)"))
    line = float(value.evaluate("e => parseFloat(getComputedStyle(e).lineHeight) || 0")) \
        or 1.6 * size
    # Four characters side by side, on one line: not one character per line.
    assert box["width"] >= 4 * size, box
    assert box["height"] < 1.5 * line, box
    shoot(page, f"ca-account-ja-{'phone' if viewport is PHONE else 'wide'}")
