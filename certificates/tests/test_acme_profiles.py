"""ACME profiles (draft-ietf-acme-profiles). Debian's Pebble 2.4.0 lists none,
so the directory is the one seam replaced: Pebble's own directory document with
``meta.profiles`` added as Let's Encrypt publishes it. Everything else is real:
Pebble takes the orders (it ignores the field it does not know), issues, and
the testbed host serves. Renewal timing of 6-day certificates is proved at the
database level with an injected time."""

import datetime
import json
from decimal import Decimal

import pytest
from acme import client, messages
from django.core.exceptions import ValidationError
from django.utils import timezone

from certificates.models import Certificate, RenewalRun
from certificates.renewal import ca_check, deposit, policy, scheduling
from certificates.seams import acme, acme_protocol
from certificates.tests import factories

pytestmark = pytest.mark.django_db

# As https://acme-v02.api.letsencrypt.org/directory lists them.
LETS_ENCRYPT_PROFILES = {
    "classic": "https://letsencrypt.org/docs/profiles#classic",
    "shortlived": "https://letsencrypt.org/docs/profiles#shortlived",
    "tlsserver": "https://letsencrypt.org/docs/profiles#tlsserver",
}


@pytest.fixture
def directory_with_profiles(monkeypatch):
    """Every directory fetched lists LETS_ENCRYPT_PROFILES in its meta."""
    fetch = client.ClientV2.get_directory

    def with_profiles(url, net):
        document = json.loads(fetch(url, net).json_dumps())
        document.setdefault("meta", {})["profiles"] = LETS_ENCRYPT_PROFILES
        return messages.Directory.from_json(document)

    monkeypatch.setattr(client.ClientV2, "get_directory", staticmethod(with_profiles))


@pytest.fixture
def orders_sent(monkeypatch):
    """The newOrder payloads the client posted, as JSON."""
    sent = []
    post = acme_protocol.Network.post

    def recording(self, url, obj, *args, **kwargs):
        if isinstance(obj, messages.NewOrder):
            sent.append(obj.to_partial_json())
        return post(self, url, obj, *args, **kwargs)

    monkeypatch.setattr(acme_protocol.Network, "post", recording)
    return sent


def test_the_ca_seam_reads_the_profiles_a_directory_lists(pebble, directory_with_profiles):
    ca = acme.CA.connect(directory_url=pebble.directory_url,
                         account_key_pem=acme.new_account_key(), verify=str(pebble.ca_bundle))
    assert ca.profiles == LETS_ENCRYPT_PROFILES


def test_a_directory_without_profiles_lists_none(pebble):
    ca = acme.CA.connect(directory_url=pebble.directory_url,
                         account_key_pem=acme.new_account_key(), verify=str(pebble.ca_bundle))
    assert ca.profiles == {}


def test_testing_a_ca_account_stores_the_profiles_its_ca_lists(
        organization, pebble, settings, directory_with_profiles):
    settings.ACME_CA_BUNDLE = str(pebble.ca_bundle)
    account = factories.ca_account(organization, directory_url=pebble.directory_url)

    assert ca_check.check_stored(account) == []

    account.refresh_from_db()
    assert account.profiles == LETS_ENCRYPT_PROFILES
    assert account.profiles_checked_at is not None


def test_a_certificate_may_choose_only_a_profile_its_ca_lists(organization):
    ca = factories.ca_account(organization, profiles=LETS_ENCRYPT_PROFILES)
    cert = Certificate(organization=organization, ca_account=ca, common_name="www.example.test",
                       profile="shortlived")
    cert.full_clean()
    cert.profile = "longlived"
    with pytest.raises(ValidationError) as info:
        cert.full_clean()
    assert "classic, shortlived, tlsserver" in info.value.message_dict["profile"][0]


def test_a_certificate_on_a_profile_keeps_it_through_two_renewals(
        organization, pebble, target_host, settings, directory_with_profiles, orders_sent):
    settings.ACME_CA_BUNDLE = str(pebble.ca_bundle)
    ca = factories.ca_account(organization, directory_url=pebble.directory_url,
                              price=Decimal("0"), profiles=LETS_ENCRYPT_PROFILES)
    host = factories.portal_host(organization, target_host)
    cert = factories.http01_certificate(organization, ca, host, [target_host.name],
                                        profile="shortlived")

    for _renewal in range(2):
        Certificate.objects.filter(pk=cert.pk).update(
            renew_after=timezone.now() - datetime.timedelta(seconds=1))
        run = scheduling.run_inline(certificate_id=cert.pk)
        assert run.status == RenewalRun.Status.SUCCEEDED, (run.error, list(run.steps.values()))

    assert [order.get("profile") for order in orders_sent] == ["shortlived", "shortlived"]
    cert.refresh_from_db()
    assert cert.profile == "shortlived"
    assert cert.versions.count() == 2
    target_host.wait_for_served_leaf(cert.current_version.fingerprint_sha256)


def test_an_order_leaves_out_a_profile_the_ca_no_longer_lists(
        organization, pebble, target_host, settings, orders_sent):
    settings.ACME_CA_BUNDLE = str(pebble.ca_bundle)
    ca = factories.ca_account(organization, directory_url=pebble.directory_url,
                              price=Decimal("0"), profiles=LETS_ENCRYPT_PROFILES)
    host = factories.portal_host(organization, target_host)
    cert = factories.http01_certificate(organization, ca, host, [target_host.name],
                                        profile="shortlived")

    run = scheduling.run_inline(certificate_id=cert.pk)  # Pebble's own directory: none listed

    assert run.status == RenewalRun.Status.SUCCEEDED, (run.error, list(run.steps.values()))
    assert [order.get("profile") for order in orders_sent] == [None]
    assert run.steps.filter(detail__contains="shortlived").exists()


# -- 6-day certificates (Let's Encrypt's "shortlived"), on an injected clock ----------

START = datetime.datetime(2030, 1, 1, 3, 0, tzinfo=datetime.UTC)
DAY = datetime.timedelta(days=1)


def issue_at(cert, when, lifetime):
    version = factories.new_version(cert, cert.common_name)
    version.not_before, version.not_after = when, when + lifetime
    version.save(update_fields=["not_before", "not_after"])
    factories.make_current(cert, version)
    return version


def test_a_six_day_certificate_renews_around_day_three_and_is_never_due_after_expiry(
        organization):
    ca = factories.ca_account(organization, price=Decimal("100"),
                              profiles=LETS_ENCRYPT_PROFILES)
    cert = factories.certificate(organization, ca, profile="shortlived")
    now, renewed_at = START, []
    for _renewal in range(10):  # thirty days
        version = issue_at(cert, now, 6 * DAY)
        renew_after = policy.schedule_renewal(cert, version, now=now)
        # Not due before its time, due at it, with half its life left.
        assert cert.pk not in scheduling.due_certificates(renew_after - datetime.timedelta(
            seconds=1)).values_list("pk", flat=True)
        assert cert.pk in scheduling.due_certificates(renew_after).values_list("pk", flat=True)
        assert version.not_after - renew_after == 3 * DAY
        renewed_at.append((renew_after - version.not_before) / DAY)
        now = renew_after
    assert renewed_at == [3.0] * 10
    cert.refresh_from_db()
    assert cert.profile == "shortlived"


def test_the_deposit_forecast_counts_the_renewals_of_six_day_certificates(organization):
    ca = factories.ca_account(organization, price=Decimal("100"))
    short = factories.certificate(organization, ca, common_name="short.example.test",
                                  sans=["short.example.test"])
    long = factories.certificate(organization, ca, common_name="long.example.test",
                                 sans=["long.example.test"])
    policy.schedule_renewal(short, issue_at(short, START, 6 * DAY), now=START)
    policy.schedule_renewal(long, issue_at(long, START, 90 * DAY), now=START)
    deposit.top_up(ca_account=ca, amount=Decimal("500"))  # five renewals

    outlook = deposit.forecast(ca, now=START)

    # The 6-day one every 3 days (days 3, 6 ... 30), the 90-day one on day 60.
    assert outlook.due[30] == (10, Decimal("1000"))
    assert outlook.due[90][0] == 30 + 1
    # The sixth renewal, on day 18, is the first the balance cannot pay.
    assert outlook.runs_out_on == timezone.localtime(START + 18 * DAY).date()
