"""Messages are data: a run recorded by a worker running in Japanese is read in
English by an English reader and in Japanese by a Japanese one, on pages, in
the API, in mails and in webhooks; rows from before keys keep their text."""

import re

import pytest
from django.core import mail
from django.urls import reverse
from django.utils import translation

from accounts.models import Membership, Role
from api.models import Webhook, WebhookDelivery
from api.tests.conftest import client_for, make_token
from certificates import alerts, renewal
from certificates.inventory import monitoring
from certificates.messages import Message, message, render, stored_fields
from certificates.models import Deployment, MonitoredEndpoint, Notification, RenewalRun, RenewalStep
from certificates.renewal.issuance import IssuanceFailed, run_issuance
from certificates.steps import Step, StepStatus
from certificates.tests.factories import (
    ca_account,
    certificate,
    http01_certificate,
    one_of_everything,
    portal_host,
)
from certificates.tests.pages import page
from testbed.ports import free_port

pytestmark = pytest.mark.django_db

# Kana and kanji: evidence that a text is in Japanese, whatever its words.
JAPANESE = re.compile(r"[\u3040-\u30ff\u4e00-\u9fff]")
CA_WORDS_EN = "The CA could not connect to the server to check the challenge."


@pytest.fixture
def member_of(django_user_model, organization):
    def make(username, role, language):
        user = django_user_model.objects.create_user(
            username=username, language=language, email=f"{username}@example.test")
        Membership.objects.create(user=user, organization=organization, role=role)
        return user
    return make


def failed_with_http_404_in_japanese(organization):
    """A run that a worker running in Japanese ended on the CA's HTTP 404."""
    cert = certificate(organization, ca_account(organization))
    run = RenewalRun.objects.create(certificate=cert, trigger=RenewalRun.Trigger.SCHEDULE,
                                    status=RenewalRun.Status.RUNNING)
    with translation.override("ja"):
        renewal.fail(run, IssuanceFailed(message("ca.http_status", status=404),
                                         transient=False))
    return run


def html_of(client, run, **headers):
    response = client.get(reverse("certificates:run", args=[run.pk]), **headers)
    assert response.status_code == 200
    return response.content.decode()


@pytest.fixture
def failed_in_japanese(organization, pebble, settings, target_host):
    """A real run against Pebble, by a worker running in Japanese, that fails at
    the CA: nowhere.example.test resolves to where no web server answers."""
    settings.ACME_CA_BUNDLE = str(pebble.ca_bundle)
    ca = ca_account(organization, directory_url=pebble.directory_url)
    host = portal_host(organization, target_host)
    cert = http01_certificate(organization, ca, host, ["nowhere.example.test"])
    with translation.override("ja"):
        run = run_issuance(certificate_id=cert.pk)
    assert run.status == RenewalRun.Status.FAILED, run.error
    return RenewalRun.objects.get(pk=run.pk)


def test_a_run_recorded_in_japanese_reads_in_each_readers_language(failed_in_japanese):
    run = failed_in_japanese
    # The CA's problem document is kept as it came, as the message's parameter.
    assert run.error_key == "ca.problem"
    assert run.error_params["problem"] == run.problem
    detail = run.problem["subproblems"][0]["detail"]

    english = run.error_message.render("en")
    japanese = run.error_message.render("ja")
    assert english.startswith(CA_WORDS_EN) and detail in english
    assert not JAPANESE.search(english.replace(detail, ""))
    assert JAPANESE.search(japanese) and detail in japanese
    assert run.error == english  # the text column: English, for tools and search

    account = run.steps.get(name=Step.ACCOUNT)
    assert account.detail_key == "issue.account"
    assert account.detail_message.render("en").startswith("Account registered.")
    assert JAPANESE.search(account.detail_message.render("ja"))
    assert not JAPANESE.search(account.detail)


def test_the_run_page_follows_the_readers_language(client, viewer, failed_in_japanese):
    run = failed_in_japanese
    client.force_login(viewer)
    english = html_of(client, run, HTTP_ACCEPT_LANGUAGE="en")
    assert CA_WORDS_EN in english and "Account registered." in english
    viewer.language = "ja"
    viewer.save()
    japanese = page(client, "certificates:run", run.pk)
    assert CA_WORDS_EN not in japanese and "Account registered." not in japanese
    steps = client.get(reverse("certificates:run_steps", args=[run.pk])).json()
    assert all(not s["detail"] or JAPANESE.search(s["detail"]) or "://" in s["detail"]
               for s in steps["steps"] if s["name"] == Step.ACCOUNT)
    assert JAPANESE.search(steps["error"])


def test_the_api_answers_in_the_accept_language_with_the_key_and_parameters(
        viewer, failed_in_japanese):
    run = failed_in_japanese
    api = client_for(make_token(viewer, ("read",))[1])
    english = api.get(f"/api/v1/runs/{run.pk}/", HTTP_ACCEPT_LANGUAGE="en").json()
    japanese = api.get(f"/api/v1/runs/{run.pk}/", HTTP_ACCEPT_LANGUAGE="ja").json()
    assert english["error"].startswith(CA_WORDS_EN)
    assert JAPANESE.search(japanese["error"])
    for body in (english, japanese):
        assert body["error_key"] == "ca.problem"
        assert body["error_params"]["problem"] == run.problem
    step = next(s for s in english["steps"] if s["name"] == Step.ACCOUNT)
    assert step["label"] == "CA account" and step["detail_key"] == "issue.account"
    assert step["detail"].startswith("Account registered.")
    step = next(s for s in japanese["steps"] if s["name"] == Step.ACCOUNT)
    assert step["label"] == "CA アカウント" and JAPANESE.search(step["detail"])


def test_each_recipient_reads_the_failure_mail_in_their_own_language(
        organization, member_of, failed_in_japanese):
    member_of("english", Role.OWNER, "en")
    member_of("japanese", Role.ADMIN, "ja")
    run = failed_in_japanese
    mail.outbox.clear()
    with translation.override("ja"):  # the worker's language does not matter
        alerts.notify(Notification.Kind.RENEWAL_FAILED, certificate=run.certificate, run=run)
    bodies = {m.to[0]: m.body for m in mail.outbox}
    assert CA_WORDS_EN in bodies["english@example.test"]
    japanese = bodies["japanese@example.test"]
    assert CA_WORDS_EN not in japanese
    assert str(render("ca.problem", run.error_params, "ja")) in japanese


def test_a_webhook_gets_english_text_with_the_key_and_parameters(organization):
    Webhook.objects.create(organization=organization, url="http://127.0.0.1:9/hook",
                           secret="s" * 32, events=["renewal.failed"])
    failed_with_http_404_in_japanese(organization)
    data = WebhookDelivery.objects.get(event="renewal.failed").payload["data"]
    assert data["error"] == "The CA answered with HTTP 404."
    assert data["error_key"] == "ca.http_status" and data["error_params"] == {"status": 404}


def test_a_row_from_before_keys_renders_its_text(client, viewer, organization):
    cert = certificate(organization, ca_account(organization))
    run = RenewalRun.objects.create(certificate=cert, trigger=RenewalRun.Trigger.SCHEDULE,
                                    status=RenewalRun.Status.FAILED,
                                    error="CA から HTTP 404 の応答がありました。")
    RenewalStep.objects.create(run=run, name=Step.ORDER, status=StepStatus.FAILED,
                               detail="古い記録")
    assert str(run.error_message) == "CA から HTTP 404 の応答がありました。"
    client.force_login(viewer)
    html = page(client, "certificates:run", run.pk)
    assert "古い記録" in html and "CA から HTTP 404 の応答がありました。" in html


def test_an_unknown_key_or_parameters_that_do_not_fit_still_read(client, viewer, organization):
    assert render("no.such.key", {"status": 404}, "en") == "no.such.key (status=404)"
    assert render("no.such.key", {}, "en", fallback="as stored") == "as stored"
    assert render("ca.http_status", {"other": 1}, "en") == "ca.http_status (other=1)"
    assert render("ca.problem", {"problem": "not a document"}, "en") == ""
    cert = certificate(organization, ca_account(organization))
    run = RenewalRun.objects.create(certificate=cert, trigger=RenewalRun.Trigger.SCHEDULE,
                                    status=RenewalRun.Status.FAILED, error_key="gone.key",
                                    error_params={"n": 1})
    RenewalStep.objects.create(run=run, name=Step.ORDER, status=StepStatus.FAILED,
                               detail_key="issue.stored", detail_params={"serial": []})
    client.force_login(viewer)
    assert "gone.key (n=1)" in page(client, "certificates:run", run.pk)


def test_nested_messages_plurals_and_amounts_read_in_each_language():
    said = message("run.deploy_failed", count=1, hosts=[message(
        "run.host_failed", host="web1", error=message("install.backup_saved", count=2,
                                                      folder="/backup"))])
    assert said.render("en") == "Deployment failed on 1 host(s): web1: 2 files saved in /backup"
    assert JAPANESE.search(said.render("ja")) and "web1" in said.render("ja")
    charged = message("run.charged", amount={"$amount": "1100", "currency": "JPY"})
    assert charged.render("en") == "Charged ¥1,100."
    assert "1,100円" in charged.render("ja")
    assert Message("", {}, "plain").render("ja") == "plain"


def test_step_names_are_words_in_both_languages():
    with translation.override("en"):
        labels = {str(label) for label in Step.labels}
    assert {"Private key", "Configuration test", "Served certificate check"} <= labels
    with translation.override("ja"):
        assert all(JAPANESE.search(str(label)) for label in Step.labels)


def test_the_dashboards_problems_read_in_the_readers_language(client, viewer, organization):
    failed_with_http_404_in_japanese(organization)
    client.force_login(viewer)
    english = client.get(reverse("certificates:dashboard"), HTTP_ACCEPT_LANGUAGE="en")
    assert "The CA answered with HTTP 404." in english.content.decode()
    viewer.language = "ja"
    viewer.save()
    japanese = client.get(reverse("certificates:dashboard")).content.decode()
    assert render("ca.http_status", {"status": 404}, "ja") in japanese
    assert "The CA answered with HTTP 404." not in japanese


def test_an_endpoints_failed_check_reads_in_the_readers_language(client, viewer, organization):
    # Nothing listens on this port of the loopback: no TLS handshake.
    endpoint = MonitoredEndpoint.objects.create(organization=organization, address="127.0.0.1",
                                                port=free_port(), sni_name="www.example.test")
    with translation.override("ja"):
        check = monitoring.check(endpoint.pk)
    assert check.error_key == "tls.no_handshake_short"
    assert check.error.startswith("No TLS handshake with 127.0.0.1")
    client.force_login(viewer)
    url = reverse("certificates:endpoint", args=[endpoint.pk])
    english = client.get(url, HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert "No TLS handshake with 127.0.0.1" in english
    viewer.language = "ja"
    viewer.save()
    japanese = client.get(url).content.decode()
    assert "No TLS handshake" not in japanese
    assert render(check.error_key, check.error_params, "ja") in japanese


def test_a_deployments_result_in_the_api_follows_the_accept_language(
        viewer, organization, tmp_path):
    deployment = one_of_everything(organization, tmp_path)["deployment"]
    with translation.override("ja"):  # as a worker in Japanese records it
        said = message("tls.not_served", address="192.0.2.1", port=443, served="aa" * 32,
                       expected="bb" * 32, seconds="10")
        Deployment.objects.filter(pk=deployment.pk).update(
            last_status=Deployment.Status.ROLLED_BACK, **stored_fields("last_error", said))
    api = client_for(make_token(viewer, ("read",))[1])
    url = f"/api/v1/deployments/{deployment.pk}/"
    english = api.get(url, HTTP_ACCEPT_LANGUAGE="en").json()
    japanese = api.get(url, HTTP_ACCEPT_LANGUAGE="ja").json()
    assert english["last_error"].startswith("192.0.2.1:443 still serves the leaf")
    assert japanese["last_error"] == said.render("ja") and JAPANESE.search(japanese["last_error"])
    assert english["last_error_key"] == japanese["last_error_key"] == "tls.not_served"
    assert english["last_error_params"]["served"] == "aa" * 32
