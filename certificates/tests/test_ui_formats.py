"""Pages write dates, times and amounts in one style per language, in the
organisation's time zone; yen are whole; ledger lines link to what they are for."""

import datetime
import re
from decimal import Decimal

import pytest
from django.urls import reverse
from django.utils import timezone

from certificates.models import CAAccount, Certificate, DepositEntry, RenewalRun, RenewalStep
from certificates.tests.factories import ca_account, new_version
from certificates.tests.pages import page

pytestmark = pytest.mark.django_db

# Tokyo's midnight that starts 1 December 2026: still 30 November in UTC.
TOKYO_MIDNIGHT = datetime.datetime(2026, 11, 30, 15, 0, tzinfo=datetime.UTC)


def reader(user, language):
    user.language = language
    user.save(update_fields=["language"])
    return user


@pytest.fixture
def run_at_tokyo_midnight(world):
    run = world["run"]
    RenewalRun.objects.filter(pk=run.pk).update(
        created_at=TOKYO_MIDNIGHT, started_at=TOKYO_MIDNIGHT,
        finished_at=TOKYO_MIDNIGHT + datetime.timedelta(minutes=1, seconds=4),
        log="web1: deployed\n")
    RenewalStep.objects.filter(run=run).update(
        at=TOKYO_MIDNIGHT + datetime.timedelta(seconds=7, microseconds=123456),
        # As the worker wrote a renewal time before details were localised.
        detail="next renewal 2027-01-31T03:04:05.654321+00:00, from the lifetime")
    return run


# -- dates and times ----------------------------------------------------------------------


@pytest.mark.parametrize(("language", "started", "renewal", "deployed"), [
    ("en", "1 Dec 2026, 00:00", "31 Jan 2027, 12:04", "web1: Deployed"),
    ("ja", "2026年12月1日 00:00", "2027年1月31日 12:04", "web1: デプロイ済み"),
])
def test_a_run_reads_in_the_readers_style_and_the_organisations_zone(
        client, owner, run_at_tokyo_midnight, language, started, renewal, deployed):
    client.force_login(reader(owner, language))
    html = page(client, "certificates:run", run_at_tokyo_midnight.pk)
    assert f'<dd id="run-started">{started}</dd>' in html
    assert '<span class="step-time">00:00:07</span>' in html
    assert f"next renewal {renewal}, from the lifetime" in html
    assert deployed in html
    # No ISO instants, no microseconds, no month-first dates.
    assert "+00:00" not in html and "654321" not in html and "12/01/2026" not in html


def test_the_live_run_page_polls_the_same_style(client, owner, run_at_tokyo_midnight):
    client.force_login(reader(owner, "ja"))
    data = client.get(reverse("certificates:run_steps", args=[run_at_tokyo_midnight.pk])).json()
    assert data["started_at"] == "2026年12月1日 00:00"
    assert data["finished_at"] == "2026年12月1日 00:01"
    assert data["steps"][0]["at"] == "00:00:07"
    assert "2027年1月31日 12:04" in data["steps"][0]["detail"]


@pytest.mark.parametrize(("language", "ago", "ahead"), [
    ("en", "2 min ago", "in 3 days"),
    ("ja", "2分前", "3日後"),
])
def test_lists_show_relative_times_with_the_exact_time_on_hover(client, world, owner,
                                                                language, ago, ahead):
    now = timezone.now()
    RenewalRun.objects.filter(pk=world["run"].pk).update(
        created_at=now - datetime.timedelta(minutes=2, seconds=5))
    Certificate.objects.filter(pk=world["certificate"].pk).update(
        expires_at=now + datetime.timedelta(days=3, hours=5))
    client.force_login(reader(owner, language))
    for name in ("certificates:dashboard", "certificates:runs"):
        html = page(client, name)
        tag = re.search(r'<time datetime="([^"]+)" title="([^"]+)">' + ago + "</time>", html)
        assert tag, name
        instant, exact = tag.groups()
        assert instant.endswith("+09:00")  # the organisation's zone, Tokyo by default
        assert exact.endswith(" JST") and exact[:4].isdigit() == (language == "ja")
    assert f">{ahead}</time>" in page(client, "certificates:certificates")


# -- amounts ------------------------------------------------------------------------------


@pytest.mark.parametrize(("language", "balance", "price"), [
    ("en", "¥10,000", "¥1,100"),
    ("ja", "10,000円", "1,100円"),
])
def test_yen_are_whole_with_thousands_in_each_language(client, world, owner, language,
                                                       balance, price):
    client.force_login(reader(owner, language))
    for html in (page(client, "certificates:ca_account", world["ca_account"].pk),
                 page(client, "certificates:dashboard"),
                 page(client, "certificates:ca_accounts")):
        assert balance in html and price in html
        assert "10000.00" not in html and "1100.00" not in html and "10,000 JPY" not in html


def test_a_yen_top_up_steps_by_one_yen_and_a_fraction_is_refused_naming_the_field(
        client, world, admin):
    account = world["ca_account"]
    client.force_login(reader(admin, "en"))
    html = page(client, "certificates:ca_account", account.pk)
    field = re.search(r'<input[^>]*name="amount"[^>]*>', html)[0]
    assert 'step="1"' in field and 'min="1"' in field
    response = client.post(reverse("certificates:top_up", args=[account.pk]),
                           {"amount": "1100.50", "note": "invoice 42"})
    assert response.status_code == 200
    assert response.context["form"].errors["amount"] == [
        "Amount: JPY has no minor unit; enter a whole number such as 1101."]
    assert not DepositEntry.objects.filter(note="invoice 42").exists()


def test_a_top_up_in_dollars_steps_by_cents(client, organization, admin):
    account = ca_account(organization, name="Dollar CA", currency="USD", price=Decimal("12.50"))
    client.force_login(reader(admin, "en"))
    html = page(client, "certificates:ca_account", account.pk)
    assert 'step="0.01"' in re.search(r'<input[^>]*name="amount"[^>]*>', html)[0]
    assert "$12.50" in html
    client.post(reverse("certificates:top_up", args=[account.pk]), {"amount": "20.25"})
    assert account.balance() == Decimal("20.25")


def test_a_yen_price_with_a_fraction_is_refused_on_the_ca_account_form(client, world, admin):
    client.force_login(reader(admin, "ja"))
    edit = page(client, "certificates:ca_account_edit", world["ca_account"].pk)
    assert 'step="1"' in re.search(r'<input[^>]*name="price"[^>]*>', edit)[0]
    response = client.post(reverse("certificates:ca_account_create"), {
        "name": "Yen CA", "directory_url": "https://ca.example.test/dir",
        "contact_email": "ops@example.test", "price": "990.5", "currency": "JPY",
        "low_balance_threshold": "0"})
    assert response.status_code == 200
    [error] = response.context["form"].errors["price"]
    assert error.startswith("証明書 1 枚あたりの価格: JPY には小数点以下の単位がありません")
    assert not CAAccount.objects.filter(name="Yen CA").exists()


# -- the ledger ---------------------------------------------------------------------------


def test_ledger_lines_link_to_the_version_and_run_they_paid_for(client, world, owner):
    certificate, run = world["certificate"], world["run"]
    version = new_version(certificate, certificate.common_name)
    RenewalRun.objects.filter(pk=run.pk).update(version=version)
    DepositEntry.objects.create(ca_account=world["ca_account"], kind=DepositEntry.Kind.CHARGE,
                                amount=Decimal("-1100"), reference=f"charge:version:{version.pk}",
                                note=str(version))
    DepositEntry.objects.filter(pk=world["deposit_entry"].pk).update(note="invoice 42")
    client.force_login(reader(owner, "en"))
    html = page(client, "certificates:ca_account", world["ca_account"].pk)
    ledger = html[html.index('id="ledger"'):]
    version_url = reverse("certificates:certificate", args=[certificate.pk])
    assert f'href="{version_url}#version-{version.pk}">www.example.test · ' in ledger
    assert f'href="{reverse("certificates:run", args=[run.pk])}">run #{run.pk}</a>' in ledger
    assert "invoice 42" in ledger and "-¥1,100" in ledger
    assert "charge:version:" not in ledger and "topup-" not in ledger
    # The anchor the link names is there.
    assert f'id="version-{version.pk}"' in page(client, "certificates:certificate",
                                                 certificate.pk)
