"""The dashboard's expiry timeline: a range of 3, 12 or 24 months or all of it,
certificates valid for more than a year shown by default, marks for failing and
never-issued certificates, lanes named as the cards, month labels that fit, and
a target a finger can hit for every mark."""

import datetime
import re

import pytest
from django.utils import timezone

from certificates import states
from certificates.tests.factories import ca_account, certificate
from certificates.tests.pages import page
from certificates.views import timeline, timeline_range

pytestmark = pytest.mark.django_db


def test_months_are_added_as_the_calendar_has_them():
    tokyo = datetime.timezone(datetime.timedelta(hours=9))
    first = datetime.datetime(2026, 12, 1, 9, 30, tzinfo=tokyo)
    assert timeline_range.add_months(first, 1) == first.replace(year=2027, month=1)
    assert timeline_range.add_months(first, 24) == first.replace(year=2028)
    end_of_january = datetime.datetime(2027, 1, 31, tzinfo=tokyo)
    assert timeline_range.add_months(end_of_january, 1).date() == datetime.date(2027, 2, 28)
    assert timeline_range.add_months(end_of_january, 13).date() == datetime.date(2028, 2, 29)


def _svg(html):
    return html[html.index("<svg"):html.index("</svg>")]


def _cert(organization, ca, name, days, **fields):
    expires = timezone.now() + datetime.timedelta(days=days) if days is not None else None
    renew_after = expires - datetime.timedelta(days=30) if expires else None
    return certificate(organization, ca, common_name=name, sans=[name], expires_at=expires,
                       renew_after=renew_after, **fields)


def _current_range(html):
    return re.search(r'data-range="(\w+)" aria-current="true"', html).group(1)


def test_certificates_valid_for_years_are_shown_by_default(client, organization, owner):
    ca = ca_account(organization)
    _cert(organization, ca, "five-years.example.test", 5 * 365)
    client.force_login(owner)

    html = page(client, "certificates:dashboard")

    assert _current_range(html) == "all"
    assert "five-years.example.test" in _svg(html)
    assert "expires later" not in html


def test_a_shorter_range_says_how_many_expire_later_and_offers_all(client, organization, owner):
    ca = ca_account(organization)
    _cert(organization, ca, "soon.example.test", 40)
    _cert(organization, ca, "next-year.example.test", 500)
    client.force_login(owner)

    html = page(client, "certificates:dashboard", range="12")

    assert _current_range(html) == "12"
    svg = _svg(html)
    assert "soon.example.test" in svg and "next-year.example.test" not in svg
    assert "1 certificate expires later." in html and 'href="?range=all"' in html
    html = page(client, "certificates:dashboard", range="24")
    assert "next-year.example.test" in _svg(html)
    html = page(client, "certificates:dashboard", range="3")
    assert "soon.example.test" in _svg(html) and "next-year.example.test" not in _svg(html)


def test_twenty_four_months_label_every_other_month_and_no_label_runs_off_the_edge(
        client, organization, owner):
    ca = ca_account(organization)
    _cert(organization, ca, "far.example.test", 700)
    client.force_login(owner)

    for language in ("en", "ja"):
        html = client.get("/", {"range": "24"}, HTTP_ACCEPT_LANGUAGE=language).content.decode()
        labels = re.findall(r'<text class="tick-label" x="([\d.]+)"[^>]*>([^<]+)</text>', html)
        assert 11 <= len(labels) <= 13, labels  # every other month of 24
        for x, text in labels:
            assert float(x) + timeline._label_width(text) <= timeline.WIDTH, (x, text)
        # Each label has room up to the next.
        xs = [float(x) for x, _text in labels]
        assert all(b - a >= timeline.LABEL_SPACING for a, b in zip(xs, xs[1:], strict=False))
        assert "far.example.test" in _svg(html)


def test_failing_and_never_issued_certificates_have_marks_on_the_now_line(
        client, organization, owner):
    ca = ca_account(organization)
    _cert(organization, ca, "first-try-failed.example.test", None, failure_count=2)
    _cert(organization, ca, "not-yet.example.test", None)
    _cert(organization, ca, "failing-renewal.example.test", 20, failure_count=1)
    client.force_login(owner)

    svg = _svg(page(client, "certificates:dashboard"))

    marks = dict(re.findall(r'<circle class="mark (\w+)" cx="([\d.]+)"[^>]*><title>'
                            r'first-try-failed', svg))
    assert list(marks) == ["failing"]
    now_x = float(re.search(r'<line class="now" x1="([\d.]+)"', svg).group(1))
    assert float(marks["failing"]) == pytest.approx(now_x, abs=0.2)
    assert 'class="mark new"' in svg and "not-yet.example.test · Not issued yet" in svg
    assert "failing-renewal.example.test" in svg


def test_the_lanes_are_named_as_the_cards(client, organization, owner):
    certificate(organization, ca_account(organization))
    client.force_login(owner)
    html = page(client, "certificates:dashboard")
    lanes = re.findall(r'<text class="lane-label"[^>]*>([^<]+)</text>', _svg(html))
    cards = re.findall(r'<span class="stat-label">([^<]+)</span>', html)
    assert lanes[:len(states.State)] == [str(state.label) for state in states.State]
    assert lanes[:len(states.State)] == cards[:len(states.State)]
    assert lanes[-1] == "Managed elsewhere" and "Managed elsewhere" in cards


def test_every_mark_has_a_target_a_finger_can_hit(client, organization, owner):
    ca = ca_account(organization)
    for i in range(3):
        _cert(organization, ca, f"m{i}.example.test", 30 * (i + 1))
    client.force_login(owner)
    svg = _svg(page(client, "certificates:dashboard"))
    links = re.findall(r"<a href[^>]*>(.*?)</a>", svg)
    assert len(links) == 3
    for link in links:
        width = float(re.search(r'<rect class="hit"[^>]* width="([\d.]+)"', link).group(1))
        # The SVG is at least 800 px wide (portal.css): 32 units are over 25 px.
        assert width * 800 / timeline.WIDTH >= 24


def test_an_unknown_range_is_the_default_not_an_error(client, organization, owner):
    client.force_login(owner)
    html = page(client, "certificates:dashboard", range="forever")
    assert _current_range(html) == "12"


def test_each_month_tick_stands_on_the_first_of_its_month():
    now = datetime.datetime(2026, 12, 15, 12, 0, tzinfo=datetime.UTC)
    end = timeline_range.add_months(now, 12)
    with timezone.override("UTC"):
        svg = str(timeline.render([], now=now, end=end))
    ticks = [float(x) for x in re.findall(r'<line class="tick" x1="([\d.]+)"', svg)]
    span = (end - now).total_seconds()
    first = datetime.datetime(2027, 1, 1, tzinfo=datetime.UTC)
    expected = [timeline.LEFT + (timeline.WIDTH - timeline.LEFT - timeline.RIGHT)
                * (timeline_range.add_months(first, i) - now).total_seconds() / span
                for i in range(12)]
    assert ticks == pytest.approx(expected, abs=0.1)
