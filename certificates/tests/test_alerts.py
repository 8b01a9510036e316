"""E-mail alerts reach the people who can act, in their language, once, and
never turn a renewal into a failure of their own."""

import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from email import message_from_bytes, policy

import pytest
from django.core import mail
from django.utils import timezone, translation

from accounts.models import Membership, Role
from accounts.tests.factors import give_totp
from certificates import alerts
from certificates.alerts import notify, recipients_for
from certificates.models import MonitoredEndpoint, Notification, RenewalRun
from testbed.ports import free_port

from . import factories

pytestmark = pytest.mark.django_db

# Kana and kanji: language-neutral evidence that a text is in Japanese.
JAPANESE = re.compile(r"[\u3040-\u30ff\u4e00-\u9fff]")


@pytest.fixture
def member(django_user_model, organization):
    def make(username, role, language="", email=None):
        user = django_user_model.objects.create_user(
            username=username, language=language,
            email=f"{username}@example.test" if email is None else email,
        )
        Membership.objects.create(user=user, organization=organization, role=role)
        if role in (Role.OWNER, Role.ADMIN):
            give_totp(user)  # they must sign in with a second factor to follow the links
        return user
    return make


@pytest.fixture
def ca(organization):
    return factories.ca_account(organization, contact_email="ca-contact@example.test")


@pytest.fixture
def certificate(organization, ca):
    return factories.certificate(organization, ca, expires_at=timezone.now() + timedelta(days=10))


@pytest.fixture
def run(certificate):
    return RenewalRun.objects.create(
        certificate=certificate, trigger=RenewalRun.Trigger.SCHEDULE,
        status=RenewalRun.Status.FAILED, error_class="permanent",
        error="urn:ietf:params:acme:error:unauthorized: the challenge file was not found",
        problem={"type": "urn:ietf:params:acme:error:unauthorized", "detail": "404 Not Found"},
    )


def arguments(kind, certificate, ca, run):
    """What the renewal, deposit and deployment code pass for each kind."""
    return {
        "renewal_failed": dict(certificate=certificate, run=run, event="first"),
        "deposit_low": dict(ca_account=ca, extra={
            "balance": Decimal("3300"), "threshold": Decimal("5000"),
            "needed_30d": Decimal("4400"), "runs_out_on": timezone.now().date()}),
        "deposit_insufficient": dict(ca_account=ca, certificate=certificate, run=run, extra={
            "balance": Decimal("500"), "price": Decimal("1100"), "missing": Decimal("600")}),
        "not_served": dict(certificate=certificate, run=run, extra={
            "host": "web1", "expected": "ab" * 32, "served": "cd" * 32}),
        "expiring": dict(certificate=certificate, extra={"days": 14}),
        "agent_silent": dict(host=factories.agent_host(certificate.organization), extra={
            "last_seen": timezone.now() - timedelta(minutes=20), "interval": 300}),
        "expired": dict(certificate=certificate, extra={
            "hosts": "web1, web2", "expired_at": timezone.now()}),
        "run_stuck": dict(certificate=certificate, run=run, extra={"since": timezone.now()}),
        **{endpoint_kind: dict(endpoint=_endpoint(certificate.organization), extra={
            "name": "shop.example.test", "days": 5, "fingerprint": "ab" * 32,
            "problems": [{"code": "untrusted", "params": {"reason": "unknown issuer"}},
                         {"code": "expired", "params": {"date": "2026-01-02"}}]})
           for endpoint_kind in ENDPOINT_KINDS},
        "unmanaged_expiring": dict(inventory=factories.unmanaged_rows(
            certificate.organization, 1)[0] if kind == "unmanaged_expiring" else None,
            extra={"name": "u0.example.test", "days": 5, "where": "u0.pem"}),
    }[kind]


def _endpoint(organization):
    return MonitoredEndpoint.objects.get_or_create(organization=organization,
                                                   address="shop.example.test", port=443)[0]


ENDPOINT_KINDS = ("endpoint_expiring", "endpoint_problem", "endpoint_changed")
UNMANAGED_KINDS = ("unmanaged_expiring",)
# Alerts about a host or a monitored endpoint concern no CA account: its contact
# is not told.
HOST_KINDS = {"agent_silent", *ENDPOINT_KINDS, *UNMANAGED_KINDS}


def test_owners_admins_and_the_ca_contact_are_told_but_not_operators_or_viewers(
        organization, ca, member, outsider, settings):
    owner = member("owner", Role.OWNER, "ja")
    admin = member("admin", Role.ADMIN, "en")
    member("operator", Role.OPERATOR)
    member("viewer", Role.VIEWER)
    member("no-address", Role.ADMIN, email="")
    assert recipients_for(organization, ca) == [
        (owner.email, "ja"), (admin.email, "en"), (ca.contact_email, settings.LANGUAGE_CODE),
    ]


def test_a_member_who_is_also_the_ca_contact_gets_one_mail_in_their_language(
        organization, ca, certificate, run, member):
    member("owner", Role.OWNER, "en")
    ca.contact_email = "OWNER@Example.TEST"
    ca.save()
    assert recipients_for(organization, ca) == [("owner@example.test", "en")]
    assert [row.recipient for row in notify("renewal_failed", certificate=certificate, run=run)
            ] == ["owner@example.test"]


@pytest.mark.parametrize("language", ["ja", "en"])
@pytest.mark.parametrize("kind", Notification.Kind.values)
def test_each_kind_is_mailed_as_text_and_html_in_the_recipients_language(
        client, settings, member, certificate, ca, run, kind, language):
    owner = member("owner", Role.OWNER, language)
    rows = notify(kind, **arguments(kind, certificate, ca, run))

    contact = [] if kind in HOST_KINDS else [(ca.contact_email, settings.LANGUAGE_CODE)]
    assert [(r.recipient, r.language) for r in rows] == [(owner.email, language), *contact]
    assert all(r.sent_at and not r.error for r in rows)
    message = mail.outbox[0]
    assert message.to == [owner.email] and message.subject == rows[0].subject
    html, mimetype = message.alternatives[0]
    assert mimetype == "text/html"
    for text in (message.subject, message.body, html):
        assert bool(JAPANESE.search(text)) == (language == "ja")
    # No external resources: the only URLs are the portal's own links.
    assert "<img" not in html and "<link" not in html and "src=" not in html

    link = re.search(re.escape(settings.PORTAL_BASE_URL) + r"\S+", message.body).group()
    assert f'href="{link}"' in html
    client.force_login(owner)
    # A page view activates the viewer's language for the rest of the thread; the
    # override puts the previous one back so later tests do not inherit it.
    with translation.override(translation.get_language()):
        assert client.get(link.removeprefix(settings.PORTAL_BASE_URL)).status_code == 200


def test_dates_are_shown_in_the_organisations_time_zone(organization, certificate, member):
    member("owner", Role.OWNER, "en")
    organization.time_zone = "America/New_York"
    organization.save()
    certificate.expires_at = datetime(2030, 1, 15, 3, 0, tzinfo=UTC)
    certificate.save()
    notify("expiring", certificate=certificate, extra={"days": 7})
    assert "14 Jan 2030, 22:00 EST" in mail.outbox[0].body


def test_dates_are_shown_in_each_recipients_own_time_zone(organization, certificate, member):
    member("owner", Role.OWNER, "en").__class__.objects.filter(username="owner").update(
        time_zone="Asia/Tokyo")
    member("admin", Role.ADMIN, "en")  # none of their own: the organisation's
    organization.time_zone = "America/New_York"
    organization.save()
    certificate.expires_at = datetime(2030, 1, 15, 3, 0, tzinfo=UTC)
    certificate.save()

    notify("expiring", certificate=certificate, extra={"days": 7})

    bodies = {m.to[0]: m.body for m in mail.outbox}
    assert "15 Jan 2030, 12:00 JST" in bodies["owner@example.test"]
    assert "14 Jan 2030, 22:00 EST" in bodies["admin@example.test"]
    # A mail sent again (after a refusal) is made again in the same zone.
    mail.outbox.clear()
    Notification.objects.filter(recipient="owner@example.test").update(
        sent_at=None, next_attempt_at=timezone.now())
    assert alerts.retry_unsent() == 1
    assert "15 Jan 2030, 12:00 JST" in mail.outbox[0].body


def test_amounts_and_dates_are_written_in_each_recipients_language(organization, ca, member):
    member("owner", Role.OWNER, "en")
    member("admin", Role.ADMIN, "ja")
    organization.time_zone = "Asia/Tokyo"
    organization.save()
    notify("deposit_low", ca_account=ca, extra={
        "balance": Decimal("12000.00"), "threshold": Decimal("15000"),
        "needed_30d": Decimal("4400"), "runs_out_on": datetime(2030, 1, 15).date()})
    english, japanese = (m.body for m in mail.outbox[:2])
    assert "¥12,000" in english and "15 Jan 2030" in english and "JPY" not in english
    assert "12,000円" in japanese and "2030年1月15日" in japanese and ".00" not in japanese


def test_the_same_event_is_mailed_at_most_once_a_day(certificate, run, member):
    member("owner", Role.OWNER)
    failed = dict(certificate=certificate, run=run, event="first")
    assert len(notify("renewal_failed", **failed)) == 2
    assert notify("renewal_failed", **failed) == []
    # Another event is news of its own.
    assert len(notify("renewal_failed", certificate=certificate, run=run, event="3d")) == 2

    Notification.objects.update(created_at=timezone.now() - timedelta(hours=25))
    assert len(notify("renewal_failed", **failed)) == 2
    assert len(mail.outbox) == 6


def test_a_once_event_is_never_mailed_again(certificate, run, member):
    member("owner", Role.OWNER)
    threshold = dict(certificate=certificate, run=run, event="14d:version-7", once=True)
    assert len(notify("renewal_failed", **threshold)) == 2
    Notification.objects.update(created_at=timezone.now() - timedelta(days=30))
    assert notify("renewal_failed", **threshold) == []


def test_a_mail_that_cannot_be_sent_is_recorded_on_its_row(settings, certificate, run, member):
    member("owner", Role.OWNER)
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", free_port()  # nobody listens
    settings.EMAIL_HOST_PASSWORD = "smtp-password-never-shown"

    rows = notify("renewal_failed", certificate=certificate, run=run)

    assert len(rows) == 2
    for row in Notification.objects.all():
        assert row.sent_at is None and "ConnectionRefusedError" in row.error
        assert "smtp-password-never-shown" not in row.error


def test_a_template_that_cannot_render_is_recorded_not_raised(
        monkeypatch, certificate, run, member):
    member("owner", Role.OWNER)

    def broken(*args, **kwargs):
        raise ValueError("no such template variable")

    monkeypatch.setattr(alerts, "render_to_string", broken)
    rows = notify("renewal_failed", certificate=certificate, run=run)
    assert rows and all(r.pk and r.sent_at is None and "rendering failed" in r.error for r in rows)
    assert mail.outbox == []


def test_alerts_arrive_through_a_real_smtp_server_in_each_persons_language(
        settings, smtp_inbox, certificate, run, member):
    owner = member("owner", Role.OWNER, "ja")
    admin = member("admin", Role.ADMIN, "en")
    rows = notify("renewal_failed", certificate=certificate, run=run, event="first")

    assert all(row.sent_at and not row.error for row in rows)
    received = {envelope.rcpt_tos[0]: message_from_bytes(envelope.content, policy=policy.default)
                for envelope in smtp_inbox.envelopes}
    assert set(received) == {owner.email, admin.email, certificate.ca_account.contact_email}
    for address, japanese in [(owner.email, True), (admin.email, False)]:
        message = received[address]
        text = message.get_body(("plain",)).get_content()
        html = message.get_body(("html",)).get_content()
        for part in (message["Subject"], text, html):
            assert bool(JAPANESE.search(part)) == japanese, (address, part)
        assert certificate.common_name in message["Subject"]
        link = f"{settings.PORTAL_BASE_URL}/runs/{run.pk}/"
        assert link in text and link in html
