"""A page rendered in Japanese shows no English from the catalogue.

Each main page is rendered for a Japanese-speaking owner, with one of every
object present, and its visible text (and the titles and labels a pointer or a
screen reader finds) is searched for the catalogue's English: a msgid of two or
more words, or a single capitalised word. One found is a string rendered outside
translation (an alias makemessages does not know, a label built in Python at
import time, a stored code shown as it is) or a msgstr missing from the catalogue.
"""

import datetime
import gettext
import html
import re
from decimal import Decimal
from pathlib import Path

import pytest
from django.conf import settings
from django.urls import reverse
from django.utils import timezone

from accounts.models import Role
from certificates.models import (
    AgentCredential,
    AgentState,
    AuditEvent,
    CAAccount,
    Certificate,
    CertificateVersion,
    DepositEntry,
    Discovery,
    EndpointCheck,
    Incident,
    IncidentCertificate,
    InventoryCertificate,
    MonitoredEndpoint,
    NotificationChannel,
    RenewalRun,
    RenewalStep,
)
from certificates.tests.factories import agent_host, certificate, new_version, unmanaged_rows

pytestmark = pytest.mark.django_db

# English that a Japanese page rightly shows although it is a msgid with a
# translation. Each needs a reason; keep this short.
ALLOWED = {
    # Protocol and product names, kept in Latin letters inside the Japanese text.
    "ACME", "TLS", "DNS-01", "HTTP-01", "SSH", "EAB", "TSIG", "CSR", "API",
    # RFC 8555's name for what commercial CAs ask for, kept in the Japanese help and
    # errors beside its gloss: "External Account Binding（外部アカウントバインディング）".
    "External Account Binding",
    # The language switcher names each language in itself: "English", "日本語".
    "English",
    # IANA time zone names in the settings page's list are identifiers
    # ("America/Port-au-Prince"), not words to translate.
    "Port",
}

# A placeholder in a msgid: "%(name)s", "%s", "%d", "{name}".
PLACEHOLDER = re.compile(r"%\(\w+\)[sdfr]|%[sdfr]|\{\w*\}")
WORD = re.compile(r"[A-Za-z][A-Za-z'’-]*")
SINGLE_CAPITALISED = re.compile(r"[A-Z][a-z]+")


def english_phrases() -> set[str]:
    """The catalogue's English a Japanese page must not show: whole msgids, and the
    literal runs between the placeholders of the others, of two or more words or
    one capitalised word."""
    path = Path(settings.LOCALE_PATHS[0]) / "ja" / "LC_MESSAGES" / "django.mo"
    with path.open("rb") as mo:
        catalog = gettext.GNUTranslations(mo)._catalog  # noqa: SLF001 (msgid -> msgstr)
    phrases = set()
    for key, msgstr in catalog.items():
        msgid = key[0] if isinstance(key, tuple) else key
        msgid = msgid.split("\x04")[-1]  # without its context
        if not msgid or msgid == msgstr:
            continue  # the header, or a name the Japanese keeps as it is
        whole = not PLACEHOLDER.search(msgid)
        for part in PLACEHOLDER.split(msgid):
            part = " ".join(part.split()).strip(" .,:;·—()→+")
            words = WORD.findall(part)
            if len(words) >= 2 or (whole and SINGLE_CAPITALISED.fullmatch(part)):
                phrases.add(part)
    return phrases - ALLOWED


VISIBLE_ATTRIBUTES = re.compile(r'\s(?:title|aria-label|placeholder|alt)="([^"]*)"')
INVISIBLE = re.compile(r"<(script|style)\b.*?</\1>", re.DOTALL | re.IGNORECASE)
TAG = re.compile(r"<[^>]+>")


def visible_text(page: str) -> str:
    page = INVISIBLE.sub(" ", page)
    attributes = " | ".join(VISIBLE_ATTRIBUTES.findall(page))
    return html.unescape(TAG.sub(" | ", page) + " | " + attributes)


def english_in(text: str, phrases: set[str]) -> set[str]:
    return {phrase for phrase in phrases
            if re.search(r"(?<![A-Za-z])" + re.escape(phrase) + r"(?![A-Za-z])", text)}


@pytest.fixture
def japanese_owner(owner):
    owner.language = "ja"
    owner.save(update_fields=["language"])
    return owner


@pytest.fixture
def everything(world, organization, japanese_owner):
    """One of every object, and what makes each page show its parts: a low
    deposit, a failing certificate, a charge, a deployed run with its steps, an
    audit event."""
    ca, cert, run = world["ca_account"], world["certificate"], world["run"]
    CAAccount.objects.filter(pk=ca.pk).update(low_balance_threshold=Decimal("20000"))
    Certificate.objects.filter(pk=cert.pk).update(
        expires_at=timezone.now() + datetime.timedelta(days=20))
    failing = certificate(organization, ca, common_name="shop.example.test",
                          sans=["shop.example.test"], failure_count=2,
                          next_attempt_at=timezone.now() + datetime.timedelta(hours=3))
    RenewalRun.objects.create(certificate=failing, trigger=RenewalRun.Trigger.SCHEDULE,
                              status=RenewalRun.Status.FAILED, error_class="permanent")
    version = new_version(cert, cert.common_name)
    now = timezone.now()
    RenewalRun.objects.filter(pk=run.pk).update(
        version=version, status=RenewalRun.Status.SUCCEEDED, started_at=now,
        finished_at=now, log=f"{world['host'].name}: deployed\n")
    for name in ("account", "key", "csr", "challenge", "store", "deploy", "tls_check"):
        RenewalStep.objects.create(run=run, name=name, status="done")
    DepositEntry.objects.create(ca_account=ca, kind=DepositEntry.Kind.CHARGE,
                                amount=Decimal("-1100"),
                                reference=f"charge:version:{version.pk}", note=str(version))
    AuditEvent.objects.create(organization=organization, action=AuditEvent.Action.TOP_UP,
                              subject=ca.name, user=japanese_owner,
                              params={"amount": "10000", "currency": "JPY"})
    # An agent host that has checked in, with a credential, and a channel.
    agent = agent_host(organization, name="agent-ja")
    AgentCredential.issue(agent)
    AgentState.objects.create(host=agent, last_seen=now, version="1.0.0", mode="serve",
                              certificates={cert.common_name: {"document_root": True}})
    NotificationChannel.objects.create(
        organization=organization, name="ops", url="json://127.0.0.1:9/hook",
        shown="json://127.0.0.1:9/hook", kinds=["renewal_failed"], language="ja")
    # The inventory: unmanaged certificates, a finding, an endpoint with a history.
    rows = unmanaged_rows(organization, 3)
    InventoryCertificate.objects.filter(pk=rows[1].pk).update(status="found")
    endpoint = rows[0].endpoints.get()
    problems = [{"code": "untrusted", "params": {"reason": "unable to get issuer"}},
                {"code": "expired", "params": {"date": "2026-01-02"}},
                {"code": "name", "params": {"name": "u0.example.test"}}]
    MonitoredEndpoint.objects.filter(pk=endpoint.pk).update(result="problem", problems=problems)
    EndpointCheck.objects.create(endpoint=endpoint, result="problem", changed=True,
                                 fingerprint_sha256="ab" * 32, problems=problems)
    world["unmanaged"], world["endpoint"] = rows[0], endpoint
    # A running discovery that found a certificate, and one that failed.
    running = Discovery.objects.create(organization=organization, targets="192.0.2.0/28",
                                       ports="443 587/smtp", status="running", total=32,
                                       checked=10, served=1, requested_by=japanese_owner)
    running.findings.add(rows[1])
    failed = Discovery.objects.create(organization=organization, targets="192.0.2.1",
                                      status="failed", finished_at=now,
                                      errors=[{"kind": "Unreachable", "detail": ""}])
    world["discovery"], world["failed_discovery"] = running, failed
    # An endpoint problem on the dashboard: a certificate changed where it is served.
    changed = MonitoredEndpoint.objects.create(organization=organization, certificate=rows[2],
                                               address="u2.example.test", result="ok",
                                               protocol="smtp", port=587)
    EndpointCheck.objects.create(endpoint=changed, result="ok", changed=True)
    # An incident with a certificate that failed once, and a revoked version.
    incident = Incident.objects.create(organization=organization, name="CA bug",
                                       deadline=now + datetime.timedelta(hours=2),
                                       revoke_old=True, created_by=japanese_owner)
    IncidentCertificate.objects.create(incident=incident, certificate=failing, failures=1,
                                       last_error="timeout", next_try_at=now)
    IncidentCertificate.objects.create(incident=incident, certificate=cert,
                                       old_version=world["version"], new_version=version,
                                       replaced_at=now)
    CertificateVersion.objects.filter(pk=world["version"].pk).update(
        revoked_at=now, revocation_reason=4)
    world["incident"], world["new_version"] = incident, version
    return {**world, "agent": agent}


def main_pages(world):
    """(URL name, arguments) of the pages people use every day, and the settings."""
    cert, host, ca = world["certificate"], world["host"], world["ca_account"]
    return [
        ("certificates:dashboard", []),
        ("certificates:certificates", []), ("certificates:certificate", [cert.pk]),
        ("certificates:certificate_create", []), ("certificates:certificate_edit", [cert.pk]),
        ("certificates:renew", [cert.pk]),
        ("certificates:hosts", []), ("certificates:host", [host.pk]),
        ("certificates:host_create", []), ("certificates:host_edit", [host.pk]),
        ("certificates:runs", []), ("certificates:run", [world["run"].pk]),
        ("certificates:ca_accounts", []), ("certificates:ca_account", [ca.pk]),
        ("certificates:ca_account_create", []), ("certificates:ca_account_edit", [ca.pk]),
        ("certificates:orders", []), ("certificates:order", [world["order"].pk]),
        ("certificates:members", []), ("certificates:audit", []),
        ("certificates:channels", []), ("certificates:channel_create", []),
        ("certificates:profile", []), ("certificates:webhooks", []),
        ("certificates:webhook_create", []),
        ("certificates:agent_host_create", []), ("certificates:host", [world["agent"].pk]),
        ("certificates:incidents", []), ("certificates:incident_create", []),
        ("certificates:incident", [world["incident"].pk]),
        ("certificates:revoke_version", [cert.pk, world["version"].pk]),
        ("certificates:revoke_version", [cert.pk, world["new_version"].pk]),
        ("password_change", []), ("mfa_index", []), ("api:tokens", []),
        ("certificates:inventory", []), ("certificates:inventory_import", []),
        ("certificates:inventory_certificate", [world["unmanaged"].pk]),
        ("certificates:inventory_adopt", [world["unmanaged"].pk]),
        ("certificates:endpoints", []), ("certificates:endpoint", [world["endpoint"].pk]),
        ("certificates:discovery", []),
        ("certificates:discovery_run", [world["discovery"].pk]),
        ("certificates:discovery_run", [world["failed_discovery"].pk]),
    ]


def test_the_catalogue_gives_this_test_english_to_look_for():
    phrases = english_phrases()
    # Two words, one capitalised word, and a literal run between placeholders.
    assert {"Renewal runs", "Dashboard", "renewals in the next 30 days need"} <= phrases
    assert "ACME" not in phrases


def test_a_page_with_english_is_caught():
    phrases = english_phrases()
    page = '<p title="Renewal runs">更新</p><svg><text>Valid</text></svg><p>ダッシュボード</p>'
    assert english_in(visible_text(page), phrases) >= {"Renewal runs", "Valid"}
    assert not english_in(visible_text("<p>更新履歴</p><code>www.example.test</code>"), phrases)


def test_the_main_pages_in_japanese_show_no_english_from_the_catalogue(client, everything,
                                                                       japanese_owner):
    assert japanese_owner.memberships.get().role == Role.OWNER
    client.force_login(japanese_owner)
    phrases = english_phrases()
    found = {}
    for name, args in main_pages(everything):
        response = client.get(reverse(name, args=args))
        assert response.status_code == 200, (name, response.status_code)
        page = response.content.decode()
        assert '<html lang="ja"' in page.replace("'", '"'), name
        english = english_in(visible_text(page), phrases)
        if english:
            found[name] = sorted(english)
    assert not found, "\n".join(f"{name}: {words}" for name, words in found.items())
