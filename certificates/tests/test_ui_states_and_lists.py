"""The dashboard and the certificate list: each certificate's one state and the
counts, the expiry timeline, and the list's search, filters, sorting and pages.
"""

import datetime

import pytest
from django.urls import reverse
from django.utils import timezone

from certificates import states
from certificates.formatting import format_date
from certificates.models import Certificate, Deployment, RenewalRun
from certificates.tests.factories import ca_account, certificate, host
from certificates.tests.pages import page
from certificates.tests.pki import ssh_keypair

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def english(client):
    """Messages are asserted in English; the Japanese pages are the browser test's."""
    client.defaults["HTTP_ACCEPT_LANGUAGE"] = "en"


# -- states, counts and filters ----------------------------------------------------


def _certificates_in_every_state(organization):
    now = timezone.now()
    ca = ca_account(organization, name="States")
    days = datetime.timedelta(days=1)

    def make(name, **fields):
        return certificate(organization, ca, common_name=name, sans=[name], **fields)

    made = {
        "expired": make("expired.example.test", expires_at=now - days),
        # Renewing by hand before its time: once the run ends it is simply valid.
        "renewing": make("renewing.example.test", expires_at=now + 50 * days,
                         renew_after=now + 20 * days),
        "failing": make("failing.example.test", expires_at=now + 50 * days, failure_count=2),
        "new": make("new.example.test"),
        "due": make("due.example.test", expires_at=now + 40 * days, renew_after=now - days),
        "expiring": make("expiring.example.test", expires_at=now + 20 * days,
                         renew_after=now + 10 * days),
        "valid": make("valid.example.test", expires_at=now + 80 * days,
                      renew_after=now + 50 * days),
    }
    RenewalRun.objects.create(certificate=made["renewing"], trigger=RenewalRun.Trigger.MANUAL)
    return made


def test_every_certificate_has_exactly_one_state_and_the_counts_add_up(organization):
    made = _certificates_in_every_state(organization)
    counts = states.counts(Certificate.objects.all())
    assert counts == {state: 1 for state in states.State.values}
    for state, cert in made.items():
        assert states.state_of(cert) == state
        assert list(states.filter_state(Certificate.objects.all(), state)) == [cert]


def test_only_an_open_run_makes_a_certificate_renewing_and_counting_is_one_query(
    organization, django_assert_num_queries
):
    made = _certificates_in_every_state(organization)
    renewing, valid = made["renewing"], made["valid"]
    RenewalRun.objects.filter(certificate=renewing).update(status=RenewalRun.Status.RUNNING)
    for status in (RenewalRun.Status.SUCCEEDED, RenewalRun.Status.FAILED):
        RenewalRun.objects.create(certificate=valid, trigger=RenewalRun.Trigger.MANUAL,
                                  status=status)
    with django_assert_num_queries(1):
        counts = states.counts(Certificate.objects.all())
    assert counts == {state: 1 for state in states.State.values}
    assert states.state_of(renewing) == "renewing" and states.state_of(valid) == "valid"
    RenewalRun.objects.filter(certificate=renewing).update(status=RenewalRun.Status.SUCCEEDED)
    assert states.state_of(renewing) == "valid"


def test_the_dashboard_counts_link_to_the_filtered_list(client, organization, owner):
    made = _certificates_in_every_state(organization)
    client.force_login(owner)
    html = page(client, "certificates:dashboard")
    for state in states.State.values:
        assert f'href="{reverse("certificates:certificates")}?state={state}"' in html
        listing = page(client, "certificates:certificates", state=state)
        assert made[state].common_name in listing
        others = [c.common_name for s, c in made.items() if s != state]
        assert not any(f">{name}<" in listing for name in others), state


def test_the_timeline_has_a_mark_with_name_and_date_for_each_coming_expiry(
    client, organization, owner
):
    made = _certificates_in_every_state(organization)
    client.force_login(owner)
    html = page(client, "certificates:dashboard")
    svg = html[html.index("<svg"):html.index("</svg>")]
    # Every state has its mark: expired and not issued ones on the "now" line.
    assert svg.count("<circle") == 7
    assert made["valid"].common_name in svg and 'class="mark valid"' in svg
    assert f"{made['new'].common_name} · Not issued yet" in svg
    assert 'class="mark expired"' in svg and 'class="mark new"' in svg


def _svg(html):
    return html[html.index("<svg"):html.index("</svg>")]


def test_a_small_fleet_has_one_mark_per_certificate_linking_to_it(client, organization, owner):
    made = _certificates_in_every_state(organization)
    client.force_login(owner)
    svg = _svg(page(client, "certificates:dashboard"))
    valid = made["valid"]
    when = format_date(valid.expires_at)  # in the organisation's zone, Tokyo by default
    assert f"<title>{valid.common_name} · {when}</title>" in svg
    assert f'href="{reverse("certificates:certificate", args=[valid.pk])}"' in svg
    assert 'class="mark group' not in svg


def _one_week_ahead(days):
    """Noon on the Monday of the week `days` ahead, local time."""
    day = timezone.localtime(timezone.now() + datetime.timedelta(days=days))
    monday = day - datetime.timedelta(days=day.weekday())
    return monday.replace(hour=12, minute=0, second=0, microsecond=0)


def test_a_large_fleet_has_one_mark_per_week_and_state_naming_them_on_hover(
    client, organization, other_organization, owner, monkeypatch
):
    from certificates.views import timeline

    # Grouped as soon as there are more than 2 in the window; 2 names per tooltip.
    monkeypatch.setattr(timeline, "DETAIL_LIMIT", 2)
    monkeypatch.setattr(timeline, "NAMES", 2)
    ca = ca_account(organization, name="Weekly")
    monday = _one_week_ahead(100)
    hour = datetime.timedelta(hours=1)
    valid = [certificate(organization, ca, common_name=f"v{i}.example.test",
                         sans=[f"v{i}.example.test"], expires_at=monday + i * hour,
                         renew_after=monday - datetime.timedelta(days=30))
             for i in range(3)]
    due = certificate(organization, ca, common_name="due.example.test",
                      sans=["due.example.test"], expires_at=monday + 5 * hour,
                      renew_after=timezone.now() - datetime.timedelta(days=1))
    later = certificate(organization, ca, common_name="later.example.test",
                        sans=["later.example.test"],
                        expires_at=monday + datetime.timedelta(days=14))
    # Another organisation's certificate in the same week is neither counted nor named.
    certificate(other_organization, ca_account(other_organization, name="Theirs"),
                common_name="theirs.example.test", sans=["theirs.example.test"],
                expires_at=monday + 2 * hour)
    client.force_login(owner)
    html = page(client, "certificates:dashboard")
    svg = _svg(html)
    assert "One mark per week and state" in html
    # Three marks: the week's valid ones together, the due one, the later one.
    assert svg.count("<circle") == 3 and svg.count('class="mark group') == 3
    assert 'class="mark group valid"' in svg and 'class="mark group due"' in svg
    group = svg[svg.index('class="mark group valid"'):]
    title = group[group.index("<title>") + 7:group.index("</title>")]
    assert title.startswith("3 certificates, ")
    assert "v0.example.test · " in title and "v1.example.test · " in title
    assert "v2.example.test" not in svg and "+1 more" in title
    assert "theirs.example.test" not in svg
    assert '<text class="mark-count"' in group and ">3</text>" in group
    # A group of one links to its certificate, and names it with its date.
    for single in (due, later):
        assert f'href="{reverse("certificates:certificate", args=[single.pk])}"' in svg
        assert "<title>1 certificate, " in svg and f"{single.common_name} · " in svg
    # A larger group links to the list of its state up to the week's end, latest
    # first: the week's certificates head the list.
    start = svg.rindex("<a ", 0, svg.index('class="mark group valid"'))
    href = svg[start:].split('href="', 1)[1].split('"', 1)[0].replace("&amp;", "&")
    path, query = href.split("?")
    assert path == reverse("certificates:certificates")
    params = dict(pair.split("=") for pair in query.split("&"))
    assert params["state"] == "valid" and params["sort"] == "-expires"
    listing = page(client, "certificates:certificates", **params)
    assert all(c.common_name in listing for c in valid)
    assert listing.index("v2.example.test") < listing.index("v0.example.test")
    assert due.common_name not in listing and later.common_name not in listing


def test_the_list_searches_names_and_sans_and_filters_by_host_ca_and_expiry(
    client, world, owner
):
    organization = world["certificate"].organization
    other_ca = ca_account(organization, name="Other CA")
    soon = certificate(organization, other_ca, common_name="soon.example.test",
                       sans=["soon.example.test", "alias.example.test"],
                       expires_at=timezone.now() + datetime.timedelta(days=5))
    client.force_login(owner)
    listing = page(client, "certificates:certificates", q="alias")
    assert "soon.example.test" in listing and world["certificate"].common_name not in listing
    listing = page(client, "certificates:certificates", host=world["host"].pk)
    assert world["certificate"].common_name in listing and soon.common_name not in listing
    listing = page(client, "certificates:certificates", ca=other_ca.pk)
    assert soon.common_name in listing and world["certificate"].common_name not in listing
    listing = page(client, "certificates:certificates", expiring=7)
    assert soon.common_name in listing and world["certificate"].common_name not in listing
    page(client, "certificates:certificates", state="nonsense", ca="x", expiring="y")


def test_the_host_filter_takes_part_of_a_name_and_suggests_the_names_of_a_small_fleet(
    client, world, owner, tmp_path, monkeypatch
):
    from certificates.views import certificates as view

    organization = world["certificate"].organization
    elsewhere = certificate(organization, world["ca_account"], common_name="db.example.test",
                            sans=["db.example.test"])
    login_key, host_key = ssh_keypair(tmp_path, "second")
    tokyo = host(organization, login_key, host_key, name="db-tokyo-2", address="127.0.0.3")
    Deployment.objects.create(certificate=elsewhere, host=tokyo)
    client.force_login(owner)
    listing = page(client, "certificates:certificates", hostname="TOKYO")
    assert "db.example.test" in listing and world["certificate"].common_name not in listing
    assert '<option value="db-tokyo-2">' in listing and '<option value="web1">' in listing
    # A large fleet gets a plain field: a list of every host was most of the page.
    monkeypatch.setattr(view, "HOST_SUGGESTIONS", 1)
    listing = page(client, "certificates:certificates", hostname="tokyo")
    assert "db.example.test" in listing and "<datalist" not in listing


def test_the_list_of_one_host_names_it_and_offers_to_drop_it(client, world, owner):
    target = world["host"]
    client.force_login(owner)
    listing = page(client, "certificates:certificates", host=target.pk, q="example")
    assert 'id="host-filter"' in listing and f">{target.name} <a" in listing
    assert '<a href="?q=example" title="Any host"' in listing  # the other filters stay
    assert f'<input type="hidden" name="host" value="{target.pk}">' in listing


def test_the_list_is_paginated_and_sorted_by_expiry(client, organization, owner):
    ca = ca_account(organization)
    now = timezone.now()
    Certificate.objects.bulk_create([
        Certificate(organization=organization, ca_account=ca, common_name=f"c{i:03}.example.test",
                    sans=[f"c{i:03}.example.test"],
                    expires_at=now + datetime.timedelta(days=200 - i))
        for i in range(120)])
    client.force_login(owner)
    first = page(client, "certificates:certificates")
    assert first.index("c119.example.test") < first.index("c118.example.test")
    assert "c000.example.test" not in first
    last = page(client, "certificates:certificates", page=3)
    assert "c000.example.test" in last
    descending = page(client, "certificates:certificates", sort="-expires")
    assert "c000.example.test" in descending and "c119.example.test" not in descending
