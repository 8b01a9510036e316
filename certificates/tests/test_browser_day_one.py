"""Day one in Chromium (browser.py), in English and Japanese and at phone width:
mistakes caught when they are made, not at the first renewal (a CA directory
URL with a typo refused on save with the CA's answer; the host key confirmed
with the whole line `ssh-keygen -lf` prints, another host's refused as a
possible interception), "Renew now" asking first with the price, a channel's
test message received through apprise by an HTTP server on loopback, and a
person setting their own e-mail address and receiving the next alert there
through a real SMTP server. Screenshots of each in test-artifacts/."""

from email import message_from_bytes, policy

import pytest

from certificates import alerts
from certificates.models import CAAccount, NotificationChannel, RenewalRun
from certificates.tests.browser import PHONE, log_in, shoot
from certificates.tests.factories import ca_account, certificate, issued, portal_host
from certificates.tests.pki import ssh_keygen_line, ssh_keypair

pytestmark = pytest.mark.django_db(transaction=True)

LOCALES = {"en": "en-US", "ja": "ja-JP"}


def speaking(person, language):
    person.language = language
    person.save(update_fields=["language"])
    return person


def errors_of(page, field):
    return page.text_content(f"#id_{field}_errors").strip()


@pytest.mark.parametrize("language", ["en", "ja"])
def test_a_typo_in_the_directory_url_is_refused_on_save_with_its_reason(
        open_page, admin, pebble, settings, language):
    settings.ACME_CA_BUNDLE = str(pebble.ca_bundle)
    speaking(admin, language)
    page = open_page(locale=LOCALES[language])
    log_in(page, "admin")
    page.goto("/ca-accounts/new/")
    page.fill("#id_name", "Typo CA")
    page.fill("#id_directory_url", pebble.directory_url.removesuffix("/dir") + "/directory")
    page.fill("#id_contact_email", "ops@example.test")
    page.fill("#id_price", "1100")
    with page.expect_navigation():
        page.click("#save")

    error = errors_of(page, "directory_url")
    assert "404" in error
    assert ("could not be fetched" in error) if language == "en" else ("取得" in error)
    assert not CAAccount.objects.filter(name="Typo CA").exists()
    shoot(page, f"day-one-directory-typo-{language}")


@pytest.fixture
def unconfirmed_host(organization, target_host):
    return portal_host(organization, target_host, confirmed=False)


def test_the_host_key_is_confirmed_with_the_whole_line_ssh_keygen_prints(
        open_page, admin, unconfirmed_host, target_host, tmp_path):
    page = open_page()
    log_in(page, "admin")
    page.goto(f"/hosts/{unconfirmed_host.pk}/")
    with page.expect_navigation():
        page.click("#fetch-host-key")
    line = ssh_keygen_line(tmp_path, target_host.host_public_key)
    assert line.split()[1] == page.text_content("#fingerprint").strip()
    page.fill("#id_fingerprint", line)
    shoot(page, "day-one-host-key-line")
    with page.expect_navigation():
        page.click("#confirm-host-key")

    unconfirmed_host.refresh_from_db()
    assert unconfirmed_host.host_key_confirmed


@pytest.mark.parametrize("language", ["en", "ja"])
def test_another_hosts_key_is_refused_as_a_possible_interception(
        open_page, admin, unconfirmed_host, tmp_path, language):
    speaking(admin, language)
    page = open_page(locale=LOCALES[language], viewport=PHONE)
    log_in(page, "admin")
    page.goto(f"/hosts/{unconfirmed_host.pk}/")
    with page.expect_navigation():
        page.click("#fetch-host-key")
    other = ssh_keygen_line(tmp_path, ssh_keypair(tmp_path)[1])
    page.fill("#id_fingerprint", other)
    with page.expect_navigation():
        page.click("#confirm-host-key")

    error = errors_of(page, "fingerprint")
    assert other.split()[1] in error
    assert ("intercepting" in error) if language == "en" else ("傍受" in error)
    unconfirmed_host.refresh_from_db()
    assert not unconfirmed_host.host_key_confirmed
    shoot(page, f"day-one-host-key-refused-{language}-phone")


@pytest.mark.parametrize("language", ["en", "ja"])
def test_renew_now_asks_first_with_the_price(open_page, organization, operator, tmp_path,
                                             language):
    cert = issued(organization, tmp_path, renew_in_days=-1)
    speaking(operator, language)
    page = open_page(locale=LOCALES[language])
    log_in(page, "operator")
    page.goto(f"/certificates/{cert.pk}/")
    with page.expect_navigation():
        page.click("#renew-now")

    price = page.text_content("#renew-price")
    assert "1,100" in price and cert.ca_account.name in price
    assert page.is_visible("#renew-validity")
    assert not RenewalRun.objects.filter(certificate=cert).exists()  # nothing ordered yet
    shoot(page, f"day-one-renew-confirm-{language}")
    with page.expect_navigation():
        page.click("#renew-confirm-button")
    assert RenewalRun.objects.filter(certificate=cert).count() == 1


def test_a_channels_test_message_arrives_through_apprise(open_page, admin, receiver):
    page = open_page()
    log_in(page, "admin")
    page.goto("/channels/new/")
    page.fill("#id_name", "ops")
    page.fill("#id_url", receiver.url)
    page.check("input[name=kinds][value=renewal_failed]")
    page.select_option("#id_language", "en")
    with page.expect_navigation():
        page.click("form.form button[type=submit]")
    channel = NotificationChannel.objects.get(name="ops")
    assert "s3cret-pw" not in page.content()  # the URL's secret is never shown again
    shoot(page, "day-one-channels")

    with page.expect_navigation():
        page.click(f"#channel-{channel.pk} button:has-text('Send a test')")
    [message] = receiver.received
    assert message["title"] == "Test message from the certificate portal"


def test_a_person_sets_their_address_and_the_next_alert_arrives_there(
        open_page, organization, owner, smtp_inbox):
    speaking(owner, "ja")
    page = open_page(locale="ja-JP")
    log_in(page, "owner")
    page.goto("/settings/")
    page.fill("#id_email", "owner-new@example.test")
    with page.expect_navigation():
        page.click("#profile-form button[type=submit]")
    # Password resets go to this address: the portal asks for the password again
    # and then saves what was sent.
    assert "reauthenticate" in page.url
    page.fill("#id_password", "pw-owner")
    with page.expect_navigation():
        page.click("form:has(#id_password) button[type=submit]")
    owner.refresh_from_db()
    assert owner.email == "owner-new@example.test"
    shoot(page, "day-one-settings-ja")

    cert = certificate(organization, ca_account(organization, contact_email=""))
    alerts.notify("renewal_failed", certificate=cert, event="first")
    [envelope] = smtp_inbox.envelopes
    assert envelope.rcpt_tos == ["owner-new@example.test"]
    message = message_from_bytes(envelope.content, policy=policy.default)
    assert cert.common_name in message["Subject"]
    assert "更新" in message.get_body(("plain",)).get_content()  # in the person's language
