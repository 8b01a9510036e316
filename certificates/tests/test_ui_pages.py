"""The browser UI's promises, page by page: what each person sees and may do.

Viewers see but cannot act; operators renew and deploy; administrators manage
hosts, CA accounts and deposits; an outsider gets 404 for everything.
"""

import datetime
from decimal import Decimal

import pytest
from django.urls import reverse
from django.utils import formats, timezone

from accounts.models import Membership, Organization, Role
from accounts.tests.factors import reauthenticate
from certificates import states
from certificates.models import AuditEvent, Certificate, Deployment, DepositEntry, RenewalRun
from certificates.tests.factories import (
    ca_account,
    certificate,
    host,
    ssh_keypair,
)

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def english(client):
    """Messages are asserted in English; the Japanese pages are the browser test's."""
    client.defaults["HTTP_ACCEPT_LANGUAGE"] = "en"


def page(client, name, *args, **params):
    response = client.get(reverse(name, args=args), params)
    assert response.status_code == 200, (name, response.status_code)
    return response.content.decode()


LIST_PAGES = ["certificates:dashboard", "certificates:certificates", "certificates:hosts",
              "certificates:ca_accounts", "certificates:orders", "certificates:runs",
              "certificates:certificate_create", "certificates:host_create",
              "certificates:ca_account_create", "certificates:members"]


@pytest.mark.parametrize("name", LIST_PAGES)
def test_every_list_page_renders_for_the_owner(client, world, owner, name):
    client.force_login(owner)
    page(client, name)


def test_the_certificate_page_shows_names_versions_deployments_and_runs(client, world, owner):
    client.force_login(owner)
    cert, version = world["certificate"], world["version"]
    html = page(client, "certificates:certificate", cert.pk)
    assert cert.common_name in html
    assert version.fingerprint_sha256 in html
    assert version.serial in html
    assert world["host"].name in html
    assert reverse("certificates:run", args=[world["run"].pk]) in html
    assert 'id="renew-now"' in html


def test_the_certificate_page_never_shows_a_private_key_or_tsig_secret(client, world, owner):
    client.force_login(owner)
    html = page(client, "certificates:certificate", world["certificate"].pk)
    assert "PRIVATE KEY" not in html
    html = page(client, "certificates:certificate_edit", world["certificate"].pk)
    assert world["certificate"].tsig_secret not in html
    html = page(client, "certificates:host_edit", world["host"].pk)
    assert "PRIVATE KEY" not in html


def test_a_viewer_sees_everything_but_no_action(client, world, viewer):
    client.force_login(viewer)
    html = page(client, "certificates:certificate", world["certificate"].pk)
    for action in ('id="renew-now"', 'id="deploy-now"', 'id="edit"', "download/key"):
        assert action not in html
    assert "Add a certificate" not in page(client, "certificates:certificates")
    html = page(client, "certificates:ca_account", world["ca_account"].pk)
    assert 'id="top-up-submit"' not in html


def test_a_viewer_is_refused_every_action(client, world, viewer):
    client.force_login(viewer)
    pk = world["certificate"].pk
    for name, args in [("certificates:renew", [pk]), ("certificates:deploy", [pk]),
                       ("certificates:certificate_edit", [pk]),
                       ("certificates:download_key", [pk]),
                       ("certificates:top_up", [world["ca_account"].pk]),
                       ("certificates:host_key_fetch", [world["host"].pk]),
                       ("certificates:host_test", [world["host"].pk])]:
        assert client.post(reverse(name, args=args)).status_code == 403, name
    assert client.get(reverse("certificates:certificate_create")).status_code == 403
    assert RenewalRun.objects.count() == 1  # the one the world started with


def test_an_operator_may_renew_but_not_top_up_or_manage_hosts(client, world, operator):
    client.force_login(operator)
    RenewalRun.objects.all().delete()
    pk = world["certificate"].pk
    response = client.post(reverse("certificates:renew", args=[pk]))
    run = RenewalRun.objects.get(certificate_id=pk)
    assert response["Location"] == reverse("certificates:run", args=[run.pk])
    assert run.requested_by == operator and run.trigger == RenewalRun.Trigger.MANUAL
    assert client.post(reverse("certificates:top_up", args=[world["ca_account"].pk]),
                       {"amount": "100"}).status_code == 403
    assert client.get(reverse("certificates:host_create")).status_code == 403


def test_renew_now_twice_opens_one_run(client, world, owner):
    client.force_login(owner)
    RenewalRun.objects.all().delete()
    url = reverse("certificates:renew", args=[world["certificate"].pk])
    first, second = client.post(url), client.post(url)
    assert first["Location"] == second["Location"]
    assert RenewalRun.objects.count() == 1


def test_deploy_now_enqueues_the_certificates_hosts(client, world, operator, monkeypatch):
    from certificates import tasks

    sent = []
    monkeypatch.setattr(tasks.deploy_now, "delay", lambda *args: sent.append(args))
    cert = world["certificate"]
    client.force_login(operator)
    response = client.post(reverse("certificates:deploy", args=[cert.pk]),
                           {"host": [str(world["host"].pk), "99999"]})
    assert response.status_code == 302
    assert sent == [(cert.pk, [world["host"].pk])]


NEW_OBJECT_URLS = [
    ("certificates:certificate_edit", "certificate", "get"),
    ("certificates:renew", "certificate", "post"),
    ("certificates:deploy", "certificate", "post"),
    ("certificates:download_key", "certificate", "post"),
    ("certificates:host_edit", "host", "get"),
    ("certificates:host_key_fetch", "host", "post"),
    ("certificates:host_key_confirm", "host", "post"),
    ("certificates:host_test", "host", "post"),
    ("certificates:top_up", "ca_account", "post"),
    ("certificates:ca_account_edit", "ca_account", "get"),
    ("certificates:run_steps", "run", "get"),
]


@pytest.mark.parametrize("name,key,method", NEW_OBJECT_URLS)
def test_an_outsider_gets_404_for_every_action(client, world, outsider, name, key, method):
    client.force_login(outsider)
    url = reverse(name, args=[world[key].pk])
    assert getattr(client, method)(url).status_code == 404


@pytest.mark.parametrize("what", ["cert", "chain", "fullchain"])
def test_an_outsider_gets_404_for_downloads(client, world, outsider, what):
    client.force_login(outsider)
    url = reverse("certificates:download", args=[world["certificate"].pk, what])
    assert client.get(url).status_code == 404


def test_an_outsider_sees_nothing_of_another_organisation_in_lists(client, world, outsider):
    client.force_login(outsider)
    for name in LIST_PAGES[:6]:
        html = page(client, name)
        for key in ("certificate", "host", "ca_account"):
            assert str(world[key]) not in html, (name, key)


def test_members_download_the_certificate_and_chain(client, world, viewer):
    cert = world["certificate"]
    client.force_login(viewer)
    response = client.get(reverse("certificates:download", args=[cert.pk, "fullchain"]))
    assert response.status_code == 200
    assert b"BEGIN CERTIFICATE" in response.content and b"PRIVATE KEY" not in response.content
    assert "attachment" in response["Content-Disposition"]


def test_the_live_progress_endpoint_lists_the_runs_steps(client, world, viewer):
    client.force_login(viewer)
    run = world["run"]
    run.step("challenge", "started", "writing the token")
    data = client.get(reverse("certificates:run_steps", args=[run.pk])).json()
    assert data["open"] is True and data["status"] == "queued"
    assert [step["name"] for step in data["steps"]] == ["order", "challenge"]
    assert data["steps"][1]["detail"] == "writing the token"
    assert data["steps"][0]["host"] == world["host"].name
    assert "private_key" not in str(data)
    # Started, then done: one line that says how it ended.
    run.step("challenge", "done", "token written")
    data = client.get(reverse("certificates:run_steps", args=[run.pk])).json()
    assert [(s["name"], s["status"]) for s in data["steps"]] == [("order", "done"),
                                                                  ("challenge", "done")]


def test_the_run_page_follows_an_open_run_and_not_a_finished_one(client, world, owner):
    client.force_login(owner)
    run = world["run"]
    assert "data-run-poll" in page(client, "certificates:run", run.pk)
    RenewalRun.objects.filter(pk=run.pk).update(status=RenewalRun.Status.SUCCEEDED)
    assert "data-run-poll" not in page(client, "certificates:run", run.pk)


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
    assert svg.count("<circle") == 5  # every state but expired and not-issued
    assert made["valid"].common_name in svg and 'class="mark valid"' in svg
    assert made["expired"].common_name not in svg


def _svg(html):
    return html[html.index("<svg"):html.index("</svg>")]


def test_a_small_fleet_has_one_mark_per_certificate_linking_to_it(client, organization, owner):
    made = _certificates_in_every_state(organization)
    client.force_login(owner)
    svg = _svg(page(client, "certificates:dashboard"))
    valid = made["valid"]
    when = formats.date_format(timezone.localtime(valid.expires_at).date(), "DATE_FORMAT")
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
    assert "one mark per week and state" in html
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


# -- forms -------------------------------------------------------------------------


def test_adding_a_certificate_with_its_hosts(client, world, owner):
    # The host already carries a certificate: a second one needs files of its own.
    host = world["host"]
    host.private_key_path, host.certificate_path = "/etc/ssl/{name}.key", "/etc/ssl/{name}.crt"
    host.ca_bundle_path, host.fullchain_path = "/etc/ssl/{name}.ca", "/etc/ssl/{name}.full"
    host.save()
    client.force_login(owner)
    response = client.post(reverse("certificates:certificate_create"), {
        "common_name": "Shop.Example.test", "sans": "cdn.example.test\n",
        "ca_account": world["ca_account"].pk, "key_type": "ec-p256", "challenge": "http-01",
        "dns_port": 53, "tsig_algorithm": "hmac-sha256", "auto_renew": "on",
        "hosts": [world["host"].pk],
    })
    cert = Certificate.objects.get(common_name="shop.example.test")
    assert response["Location"] == reverse("certificates:certificate", args=[cert.pk])
    assert cert.sans == ["shop.example.test", "cdn.example.test"]
    assert list(cert.hosts.all()) == [world["host"]]


def test_a_wildcard_without_dns01_is_refused_next_to_the_challenge_field(client, world, owner):
    client.force_login(owner)
    response = client.post(reverse("certificates:certificate_create"), {
        "common_name": "*.example.test", "ca_account": world["ca_account"].pk,
        "key_type": "ec-p256", "challenge": "http-01", "dns_port": 53,
        "tsig_algorithm": "hmac-sha256",
    })
    assert response.status_code == 200
    errors = response.context["form"].errors
    assert "challenge" in errors and "dns-01" in " ".join(errors["challenge"])
    assert 'id="id_challenge_errors"' in response.content.decode()
    assert not Certificate.objects.filter(common_name="*.example.test").exists()


def test_a_ca_account_of_another_organisation_cannot_be_chosen(client, world, owner,
                                                               other_organization):
    foreign = ca_account(other_organization, name="Foreign")
    client.force_login(owner)
    response = client.post(reverse("certificates:certificate_create"), {
        "common_name": "x.example.test", "ca_account": foreign.pk, "key_type": "ec-p256",
        "challenge": "http-01", "dns_port": 53, "tsig_algorithm": "hmac-sha256",
    })
    assert "ca_account" in response.context["form"].errors


def test_editing_keeps_the_tsig_secret_when_left_blank(client, world, owner):
    cert = world["certificate"]
    secret = cert.tsig_secret
    client.force_login(owner)
    response = client.post(reverse("certificates:certificate_edit", args=[cert.pk]), {
        "common_name": cert.common_name, "sans": "\n".join(cert.sans),
        "ca_account": cert.ca_account_id, "key_type": "rsa-2048", "challenge": "dns-01",
        "dns_server": "127.0.0.1", "dns_port": 53, "tsig_key_name": "portal-key",
        "tsig_algorithm": "hmac-sha256", "tsig_secret": "", "auto_renew": "on",
        "hosts": [],
    })
    assert response.status_code == 302, response.context["form"].errors
    cert.refresh_from_db()
    assert cert.tsig_secret == secret and cert.key_type == "rsa-2048"
    assert not cert.deployments.exists()


# -- CA accounts and deposits ------------------------------------------------------


def test_an_administrator_tops_up_and_sees_the_ledger(client, world, admin):
    account = world["ca_account"]
    client.force_login(admin)
    response = client.post(reverse("certificates:top_up", args=[account.pk]),
                           {"amount": "5500", "note": "invoice 42"})
    assert response.status_code == 302
    entry = DepositEntry.objects.get(note="invoice 42")
    assert entry.amount == Decimal("5500") and entry.created_by == admin
    html = page(client, "certificates:ca_account", account.pk)
    assert "invoice 42" in html and "15,500" in html


def test_a_top_up_must_be_positive(client, world, admin):
    client.force_login(admin)
    response = client.post(reverse("certificates:top_up", args=[world["ca_account"].pk]),
                           {"amount": "-5"})
    assert response.status_code == 200
    assert "amount" in response.context["form"].errors


def test_a_low_deposit_is_an_open_problem_with_its_fix(client, world, admin):
    account = world["ca_account"]
    account.low_balance_threshold = Decimal("50000")
    account.save()
    client.force_login(admin)
    html = page(client, "certificates:dashboard")
    problems = html[html.index('id="problems"'):]
    assert account.name in problems
    assert reverse("certificates:ca_account", args=[account.pk]) + "#top-up" in problems


# -- hosts -------------------------------------------------------------------------


def test_a_host_key_is_confirmed_only_with_the_fingerprint_shown(client, world, admin):
    host = world["host"]
    client.force_login(admin)
    html = page(client, "certificates:host", host.pk)
    assert host.host_key_fingerprint in html and 'id="confirm-host-key"' in html
    response = client.post(reverse("certificates:host_key_confirm", args=[host.pk]),
                           {"fingerprint": "SHA256:wrong"})
    assert response.status_code == 200 and "fingerprint" in response.context[
        "confirm_form"].errors
    host.refresh_from_db()
    assert not host.host_key_confirmed
    client.post(reverse("certificates:host_key_confirm", args=[host.pk]),
                {"fingerprint": host.host_key_fingerprint})
    host.refresh_from_db()
    assert host.host_key_confirmed and host.host_key_confirmed_by == admin


def test_an_unconfirmed_host_is_not_tested(client, world, admin):
    client.force_login(admin)
    response = client.post(reverse("certificates:host_test", args=[world["host"].pk]),
                           follow=True)
    assert "Confirm the host key first" in response.content.decode()


def test_adding_a_host_reports_bad_paths_by_field(client, world, admin, tmp_path):
    from certificates.tests.factories import ssh_keypair

    login_key, _ = ssh_keypair(tmp_path, "new-host")
    client.force_login(admin)
    response = client.post(reverse("certificates:host_create"), {
        "name": "web9", "address": "127.0.0.9", "ssh_port": 22, "ssh_user": "root",
        "login_key": login_key, "private_key_path": "relative/site.key",
        "certificate_path": "/etc/ssl/site.crt", "backup_dir": "/var/backups",
        "key_mode": "0600", "cert_mode": "0644", "config_test_command": "nginx -t",
        "reload_command": "nginx -s reload", "tls_check_port": 443, "backups_to_keep": 5,
    })
    assert response.status_code == 200
    assert list(response.context["form"].errors) == ["private_key_path"]
    assert "BEGIN OPENSSH" not in response.content.decode()


# -- context: organisations, language, time zone -----------------------------------


def test_a_person_in_two_organisations_switches_between_them(client, world, owner,
                                                             other_organization):
    Membership.objects.create(user=owner, organization=other_organization, role=Role.VIEWER)
    elsewhere = ca_account(other_organization, name="Elsewhere CA")
    client.force_login(owner)
    html = page(client, "certificates:ca_accounts")
    assert 'id="org-switch"' in html
    client.post(reverse("certificates:switch_organization"),
                {"organization": other_organization.pk})
    html = page(client, "certificates:ca_accounts")
    assert elsewhere.name in html and world["ca_account"].name not in html
    # The viewer role there: no actions, although an owner at home.
    assert "Add a certificate" not in page(client, "certificates:certificates")


def test_switching_to_an_organisation_one_is_not_in_is_404(client, owner):
    stranger = Organization.objects.create(name="Stranger", slug="stranger")
    client.force_login(owner)
    response = client.post(reverse("certificates:switch_organization"),
                           {"organization": stranger.pk})
    assert response.status_code == 404


def test_the_language_switch_is_remembered_for_the_person(client, owner):
    client.force_login(owner)
    client.post(reverse("certificates:set_language"), {"language": "en", "next": "/"})
    owner.refresh_from_db()
    assert owner.language == "en"
    assert "Dashboard" in page(client, "certificates:dashboard")
    client.post(reverse("certificates:set_language"), {"language": "ja", "next": "/"})
    assert 'lang="ja"' in page(client, "certificates:dashboard")


def test_times_are_shown_in_the_organisations_time_zone(client, world, owner):
    organization = world["certificate"].organization
    run = world["run"]
    RenewalRun.objects.filter(pk=run.pk).update(
        created_at=datetime.datetime(2026, 1, 2, 23, 30, tzinfo=datetime.UTC))
    client.force_login(owner)
    owner.language = "en"
    owner.save()
    organization.time_zone = "Asia/Tokyo"
    organization.save()
    assert "01/03/2026 8:30 a.m." in page(client, "certificates:run", run.pk)
    organization.time_zone = "America/New_York"
    organization.save()
    assert "01/02/2026 6:30 p.m." in page(client, "certificates:run", run.pk)


def test_the_password_can_be_changed(client, owner):
    client.force_login(owner)
    response = client.post(reverse("password_change"), {
        "old_password": "pw-owner", "new_password1": "a-Much-longer-pass-9",
        "new_password2": "a-Much-longer-pass-9"})
    assert response.status_code == 302
    owner.refresh_from_db()
    assert owner.check_password("a-Much-longer-pass-9")


# -- the private key: administrators only, audited -----------------------------------

def test_an_administrator_downloads_the_private_key_and_it_is_audited(client, world, admin):
    client.force_login(admin)
    reauthenticate(client, admin)
    cert = world["certificate"]
    response = client.post(reverse("certificates:download_key", args=[cert.pk]),
                           REMOTE_ADDR="192.0.2.7")
    assert response.status_code == 200
    assert b"PRIVATE KEY" in response.content
    assert response["Cache-Control"] == "no-store"
    event = AuditEvent.objects.get()
    assert (event.user, event.certificate, event.action, event.ip_address) == (
        admin, cert, AuditEvent.Action.KEY_DOWNLOAD, "192.0.2.7")
    assert event.detail == world["version"].fingerprint_sha256


def test_an_operator_may_not_download_the_private_key(client, world, operator):
    client.force_login(operator)
    html = page(client, "certificates:certificate", world["certificate"].pk)
    assert "download/key" not in html
    response = client.post(reverse("certificates:download_key",
                                   args=[world["certificate"].pk]))
    assert response.status_code == 403 and b"PRIVATE KEY" not in response.content


def test_the_private_key_is_never_a_get(client, world, admin):
    client.force_login(admin)
    response = client.get(reverse("certificates:download_key", args=[world["certificate"].pk]))
    assert response.status_code == 405


# -- members -----------------------------------------------------------------------


def test_an_administrator_changes_a_members_role_and_removes_them(client, world, admin,
                                                                 django_user_model):
    newcomer = django_user_model.objects.create_user(username="newcomer",
                                                     email="new@example.test")
    membership = Membership.objects.create(user=newcomer, role=Role.VIEWER,
                                           organization=world["certificate"].organization)
    client.force_login(admin)
    client.post(reverse("certificates:member_role", args=[membership.pk]), {"role": "operator"})
    membership.refresh_from_db()
    assert membership.role == Role.OPERATOR
    # Administrators do not make owners, nor touch them.
    assert client.post(reverse("certificates:member_role", args=[membership.pk]),
                       {"role": "owner"}).status_code == 403
    client.post(reverse("certificates:member_remove", args=[membership.pk]))
    assert not Membership.objects.filter(user=newcomer).exists()


def test_an_invitation_to_a_malformed_address_is_a_field_error(client, world, admin):
    client.force_login(admin)
    response = client.post(reverse("certificates:member_invite"),
                           {"email": "nobody", "role": "viewer", "language": "en"})
    assert response.status_code == 200 and "email" in response.context["form"].errors


def test_nobody_changes_their_own_role_nor_an_owners_unless_an_owner(client, world, admin,
                                                                   owner, operator):
    client.force_login(admin)
    mine = Membership.objects.get(user=admin)
    owners = Membership.objects.get(user=owner)
    assert client.post(reverse("certificates:member_role", args=[mine.pk]),
                       {"role": "owner"}).status_code == 403
    assert client.post(reverse("certificates:member_remove", args=[owners.pk])
                       ).status_code == 403
    client.force_login(operator)
    assert client.post(reverse("certificates:member_invite"),
                       {"email": "a@example.test", "role": "viewer",
                        "language": "en"}).status_code == 403
    assert 'id="invite-member"' not in page(client, "certificates:members")


def test_an_owner_removes_another_owner_but_never_themself(client, world, owner,
                                                           django_user_model):
    second = django_user_model.objects.create_user(username="second")
    other = Membership.objects.create(user=second, organization=world["certificate"].organization,
                                      role=Role.OWNER)
    client.force_login(owner)
    mine = Membership.objects.get(user=owner)
    assert client.post(reverse("certificates:member_remove", args=[mine.pk])).status_code == 403
    client.post(reverse("certificates:member_remove", args=[other.pk]))
    assert list(Membership.objects.filter(role=Role.OWNER).values_list("user", flat=True)) == [
        owner.pk]


def test_an_outsider_cannot_touch_another_organisations_members(client, world, owner, outsider):
    client.force_login(outsider)
    membership = Membership.objects.get(user=owner)
    for name in ("certificates:member_role", "certificates:member_remove"):
        assert client.post(reverse(name, args=[membership.pk]),
                           {"role": "viewer"}).status_code == 404
    assert "<strong>owner</strong>" not in page(client, "certificates:members")


def test_an_administrator_adds_and_edits_a_ca_account_keeping_its_eab_key(client, world,
                                                                          admin, operator):
    client.force_login(admin)
    fields = {"name": "Commercial CA", "directory_url": "https://acme.example.test/directory",
              "contact_email": "ops@example.test", "eab_kid": "kid-9",
              "eab_hmac_key": "c2VjcmV0LWhtYWMta2V5LWZvci1lYWItOTg3NjU0", "price": "990",
              "currency": "JPY", "low_balance_threshold": "10000"}
    response = client.post(reverse("certificates:ca_account_create"), fields)
    from certificates.models import CAAccount

    account = CAAccount.objects.get(name="Commercial CA")
    assert response["Location"] == reverse("certificates:ca_account", args=[account.pk])
    html = page(client, "certificates:ca_account_edit", account.pk)
    assert fields["eab_hmac_key"] not in html
    client.post(reverse("certificates:ca_account_edit", args=[account.pk]),
                {**fields, "eab_hmac_key": "", "price": "-1"})
    account.refresh_from_db()
    assert account.price == Decimal("990")  # refused: a negative price
    client.post(reverse("certificates:ca_account_edit", args=[account.pk]),
                {**fields, "eab_hmac_key": "", "price": "1200"})
    account.refresh_from_db()
    assert account.price == Decimal("1200") and account.eab_hmac_key == fields["eab_hmac_key"]
    client.force_login(operator)
    assert client.get(reverse("certificates:ca_account_edit", args=[account.pk])
                      ).status_code == 403


@pytest.mark.parametrize("language,words", [("en", ["Private key", "Served certificate check"]),
                                            ("ja", ["秘密鍵", "配信中の証明書の確認"])])
def test_run_steps_are_named_in_words_of_the_readers_language(client, owner, world, language,
                                                               words):
    run = world["run"]
    run.step("key", "done")
    run.step("tls_check", "failed", "not served")
    client.force_login(owner)
    client.defaults["HTTP_ACCEPT_LANGUAGE"] = language
    html = page(client, "certificates:run", run.pk)
    for word in words:
        assert f'<span class="step-name">{word}</span>' in html
    steps = client.get(reverse("certificates:run_steps", args=[run.pk])).json()["steps"]
    assert [step["label"] for step in steps][-2:] == words
