"""One style per language for dates, times and amounts (certificates.formatting),
in the organisation's time zone: the helpers the pages and the mails share."""

import datetime
import zoneinfo
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone, translation

from certificates import formatting
from certificates.templatetags.portal_format import run_log

UTC = datetime.UTC
TOKYO = zoneinfo.ZoneInfo("Asia/Tokyo")
NEW_YORK = zoneinfo.ZoneInfo("America/New_York")


@pytest.fixture(params=["en", "ja"])
def language(request):
    with translation.override(request.param):
        yield request.param


def at(*args):
    return datetime.datetime(*args, tzinfo=UTC)


# -- dates and times ------------------------------------------------------------------


@pytest.mark.parametrize(("language_code", "expected_datetime", "expected_date"), [
    ("en", "1 Dec 2026, 15:04", "1 Dec 2026"),
    ("ja", "2026年12月1日 15:04", "2026年12月1日"),
])
def test_each_language_has_one_style_day_first_in_english(language_code, expected_datetime,
                                                         expected_date):
    with translation.override(language_code), timezone.override(TOKYO):
        assert formatting.format_datetime(at(2026, 12, 1, 6, 4, 59)) == expected_datetime
        assert formatting.format_date(at(2026, 12, 1, 6, 4)) == expected_date
        assert formatting.format_date(datetime.date(2026, 12, 1)) == expected_date


@pytest.mark.parametrize(("instant", "english", "japanese"), [
    # UTC midnight is nine in the morning in Tokyo, the same day.
    (at(2026, 12, 1, 0, 0), "1 Dec 2026, 09:00", "2026年12月1日 09:00"),
    # Tokyo's midnight is 15:00 UTC the day before: the date turns in Tokyo, not in UTC.
    (at(2026, 11, 30, 15, 0), "1 Dec 2026, 00:00", "2026年12月1日 00:00"),
    (at(2026, 11, 30, 14, 59), "30 Nov 2026, 23:59", "2026年11月30日 23:59"),
    # The last minute of a year in UTC is already the next year in Tokyo.
    (at(2026, 12, 31, 23, 59), "1 Jan 2027, 08:59", "2027年1月1日 08:59"),
])
def test_a_jst_organisation_sees_its_own_day_around_utc_midnight(instant, english, japanese):
    with timezone.override(TOKYO):
        with translation.override("en"):
            assert formatting.format_datetime(instant) == english
            assert formatting.format_date(instant) == english.split(",")[0]
        with translation.override("ja"):
            assert formatting.format_datetime(instant) == japanese
            assert formatting.format_date(instant) == japanese.split(" ")[0]


def test_the_same_instant_is_another_day_in_another_organisations_zone():
    with translation.override("en"):
        with timezone.override(NEW_YORK):
            assert formatting.format_date(at(2026, 12, 1, 0, 0)) == "30 Nov 2026"
        with timezone.override(TOKYO):
            assert formatting.format_date(at(2026, 12, 1, 0, 0)) == "1 Dec 2026"


def test_a_time_axis_names_its_months_and_the_year_at_january():
    with translation.override("en"):
        assert formatting.format_month(datetime.date(2026, 12, 1)) == "Dec"
        assert formatting.format_month(datetime.date(2027, 1, 1), year=True) == "Jan 2027"
    with translation.override("ja"):
        assert formatting.format_month(datetime.date(2026, 12, 1)) == "12月"
        assert formatting.format_month(datetime.date(2027, 1, 1), year=True) == "2027年1月"


def test_mails_name_the_zone_and_steps_show_seconds(language):
    with timezone.override(TOKYO):
        assert formatting.format_datetime(at(2026, 11, 30, 15, 0), zone=True).endswith(
            "00:00 JST")
        assert formatting.format_time(at(2026, 11, 30, 15, 0, 7, 123456)) == "00:00:07"
    assert formatting.format_datetime(None) == formatting.format_date(None) == ""


@pytest.mark.parametrize(("seconds", "english", "japanese"), [
    (30, "in under a minute", "1分以内"),
    (-30, "just now", "たった今"),
    (-120, "2 min ago", "2分前"),
    (59 * 60 + 59, "in 59 min", "59分後"),
    (3600, "in 1 hour", "1時間後"),
    (-23 * 3600, "23 hours ago", "23時間前"),
    # Rounded down: 3 days and 23 hours are 3 days, as the certificate's page says.
    (3 * 86400 + 23 * 3600, "in 3 days", "3日後"),
    (-86400, "1 day ago", "1日前"),
    (59 * 86400, "in 59 days", "59日後"),
    (90 * 86400, "in 3 months", "3か月後"),
    (-400 * 86400, "13 months ago", "13か月前"),
    (800 * 86400, "in 2 years", "2年後"),
])
def test_relative_times_in_both_languages(seconds, english, japanese):
    now = at(2026, 12, 1, 0, 0)
    then = now + datetime.timedelta(seconds=seconds)
    with translation.override("en"):
        assert formatting.format_relative(then, now) == english
    with translation.override("ja"):
        assert formatting.format_relative(then, now) == japanese


def test_a_relative_time_carries_the_instant_and_the_exact_time_on_hover():
    now = at(2026, 12, 1, 0, 0)
    with translation.override("ja"), timezone.override(TOKYO):
        tag = formatting.time_tag(at(2026, 11, 30, 15, 0), now=now)
    assert tag == ('<time datetime="2026-12-01T00:00:00+09:00" '
                   'title="2026年12月1日 00:00 JST">9時間前</time>')


def test_stored_iso_instants_are_written_in_the_readers_style_and_zone(language):
    detail = "next renewal 2026-11-30T15:00:00.123456+00:00, ARI window"
    with timezone.override(TOKYO):
        shown = formatting.localize_instants(detail)
    assert shown == {"en": "next renewal 1 Dec 2026, 00:00, ARI window",
                     "ja": "next renewal 2026年12月1日 00:00, ARI window"}[language]
    assert formatting.localize_instants("serial 0BF6, no instant") == "serial 0BF6, no instant"


def test_the_deployment_log_names_each_status_in_words():
    log = "web1: deployed\nweb 2: rolled_back: nginx -t failed\nsomething else\n"
    with translation.override("en"):
        assert run_log(log) == ("web1: Deployed\nweb 2: Rolled back: nginx -t failed\n"
                                "something else")
    with translation.override("ja"):
        assert run_log(log).startswith("web1: デプロイ済み\n")


# -- amounts ----------------------------------------------------------------------------


@pytest.mark.parametrize(("amount", "currency", "english", "japanese"), [
    (Decimal("1100.00"), "JPY", "¥1,100", "1,100円"),
    (Decimal("-12000"), "JPY", "-¥12,000", "-12,000円"),
    (Decimal("1234567.5"), "USD", "$1,234,567.50", "USD 1,234,567.50"),
    (Decimal("9.99"), "EUR", "€9.99", "EUR 9.99"),
    (Decimal("12.5"), "CHF", "CHF 12.50", "CHF 12.50"),
    (Decimal("5"), "KWD", "KWD 5.000", "KWD 5.000"),
])
def test_amounts_have_thousands_and_the_currencys_own_minor_units(amount, currency, english,
                                                                   japanese):
    with translation.override("en"):
        assert formatting.format_amount(amount, currency) == english
        assert str(formatting.Amount(amount, currency)) == english
    with translation.override("ja"):
        assert formatting.format_amount(amount, currency) == japanese
        assert str(formatting.Amount(amount, currency)) == japanese


def test_an_amount_input_steps_by_the_currencys_smallest_unit():
    assert formatting.amount_step("JPY") == "1"
    assert formatting.amount_step("jpy") == "1"
    assert formatting.amount_step("USD") == "0.01"
    assert formatting.amount_step("KWD") == "0.001"


def test_a_yen_amount_with_a_fraction_is_refused_naming_the_field(language):
    formatting.check_minor_units(Decimal("1100"), "JPY", "Amount")
    formatting.check_minor_units(Decimal("1100.00"), "JPY", "Amount")
    formatting.check_minor_units(Decimal("12.34"), "USD", "Amount")
    with pytest.raises(ValidationError) as refused:
        formatting.check_minor_units(Decimal("1100.50"), "JPY", "Amount")
    message = refused.value.messages[0]
    assert message.startswith("Amount: JPY") and "1101" in message
    with pytest.raises(ValidationError) as refused:
        formatting.check_minor_units(Decimal("12.345"), "USD", "Price")
    assert refused.value.messages[0].startswith("Price: USD")
