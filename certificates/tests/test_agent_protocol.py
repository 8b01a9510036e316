"""The agent protocol at the portal's side (docs/agent-protocol.md), through
HTTP with Django's test client: enrolment codes good once, credentials that
read only their own host's work and can be revoked, check-ins, reports that
answer the one deployment protocol's requests and end runs, challenge files,
CSRs of keys made on the server, and what happens when an agent stays silent.
The agent program itself runs against a real portal in test_agent_end_to_end."""

import threading
import time
from datetime import timedelta

import pytest
from django.core import mail
from django.core.exceptions import ValidationError
from django.db import connection
from django.urls import reverse
from django.utils import timezone

from certificates import renewal
from certificates.hosts import agents
from certificates.models import (
    AgentChallenge,
    AgentEnrolment,
    AgentState,
    Deployment,
    DeployRequest,
    Notification,
    RenewalRun,
)
from certificates.renewal import checks
from certificates.seams.errors import FailureKind
from certificates.steps import Step

from . import factories
from .factories import agent_host, make_current, new_version
from .installing import deploying_run
from .pki import csr_for


@pytest.fixture
def agent(organization):
    return agent_host(organization)


def enrol(client, agent):
    _enrolment, code = agents.make_enrolment_code(agent)
    response = client.post("/agent/v1/enrol", {"code": code, "hostname": "web9",
                                               "agent_version": "1.0.0"},
                           content_type="application/json")
    assert response.status_code == 201, response.content
    return response.json()["token"]


def call(client, token, path, body=None):
    return client.post(f"/agent/v1/{path}", body or {}, content_type="application/json",
                       HTTP_AUTHORIZATION=f"Bearer {token}")


@pytest.fixture
def token(client, agent):
    return enrol(client, agent)


@pytest.fixture
def certificate(organization, agent):
    cert = factories.certificate(organization, factories.ca_account(organization),
                                 common_name="a.example.test", sans=["a.example.test"])
    Deployment.objects.create(certificate=cert, host=agent)
    make_current(cert, new_version(cert, "a.example.test"))
    return cert


# -- enrolment ------------------------------------------------------------------------


def test_an_enrolment_code_is_good_once(client, agent):
    _enrolment, code = agents.make_enrolment_code(agent)
    first = client.post("/agent/v1/enrol", {"code": code.lower().replace("-", " ")},
                        content_type="application/json")
    again = client.post("/agent/v1/enrol", {"code": code}, content_type="application/json")
    assert first.status_code == 201
    assert first.json()["host"] == {"id": agent.pk, "name": agent.name}
    assert first.json()["token"].startswith("fja_")
    assert again.status_code == 403
    assert again.json()["error"]["code"] == "enrolment_code_used"


def test_an_expired_or_unknown_code_is_refused_with_its_reason(client, agent):
    enrolment, code = agents.make_enrolment_code(agent)
    AgentEnrolment.objects.filter(pk=enrolment.pk).update(
        expires_at=timezone.now() - timedelta(seconds=1))
    expired = client.post("/agent/v1/enrol", {"code": code}, content_type="application/json")
    unknown = client.post("/agent/v1/enrol", {"code": "AAAA-BBBB-CCCC-DDDD"},
                          content_type="application/json")
    assert (expired.status_code, expired.json()["error"]["code"]) == (
        403, "enrolment_code_expired")
    assert (unknown.status_code, unknown.json()["error"]["code"]) == (
        403, "enrolment_code_unknown")


def test_a_new_code_replaces_an_unused_one(client, agent):
    _first, old = agents.make_enrolment_code(agent)
    _second, new = agents.make_enrolment_code(agent)
    refused = client.post("/agent/v1/enrol", {"code": old}, content_type="application/json")
    assert refused.json()["error"]["code"] == "enrolment_code_expired"
    assert client.post("/agent/v1/enrol", {"code": new},
                       content_type="application/json").status_code == 201


def test_enrolling_again_ends_the_old_credential(client, agent, token):
    newer = enrol(client, agent)
    assert call(client, newer, "checkin").status_code == 200
    refused = call(client, token, "checkin")
    assert (refused.status_code, refused.json()["error"]["code"]) == (401, "credential_revoked")


def test_a_revoked_credential_is_refused_and_says_so(client, agent, token):
    assert agents.revoke(agent) == 1
    response = call(client, token, "checkin")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "credential_revoked"
    assert "revoked" in response.json()["error"]["message"]


def test_a_made_up_credential_is_refused(client, agent, token):
    prefix = token.split("_")[1]
    for raw in (f"fja_{prefix}_wrong", "fjp_abc_def", "nonsense"):
        response = call(client, raw, "checkin")
        assert (response.status_code, response.json()["error"]["code"]) == (
            401, "credential_unknown"), raw


# -- check-ins ------------------------------------------------------------------------


def test_a_check_in_with_nothing_to_do_records_the_agent(client, agent, token):
    response = call(client, token, "checkin", {
        "agent_version": "1.0.1", "mode": "serve", "interval": 60,
        "certificates": {"a.example.test": {"document_root": True}}})
    assert response.status_code == 200
    assert response.json() == {"interval": 60, "poll_wait": 25, "install": [],
                               "challenges": {"write": [], "remove": []}, "csr": []}
    state = AgentState.objects.get(host=agent)
    assert (state.version, state.mode, state.interval) == ("1.0.1", "serve", 60)
    assert state.certificates["a.example.test"]["document_root"] is True


@pytest.mark.django_db(transaction=True)
def test_a_long_poll_answers_as_soon_as_work_arrives(client, agent, token, certificate):
    """The credential's query saw nothing; a run queued while the agent waits is
    handed out in that same check-in, not at the end of the wait."""
    def queue_a_run_later():
        time.sleep(0.5)
        try:
            deploying_run(certificate)
        finally:
            connection.close()

    later = threading.Thread(target=queue_a_run_later)
    later.start()
    work = call(client, token, "checkin", {"wait": 20}).json()
    later.join()
    assert [item["certificate"] for item in work["install"]] == ["a.example.test"]


def test_an_agents_answers_are_never_stored_and_not_a_page(client, agent, token, certificate):
    deploying_run(certificate)
    response = call(client, token, "checkin")
    assert response.json()["install"][0]["files"]["private_key"]
    assert "no-store" in response["Cache-Control"]
    assert response["Content-Security-Policy"] == "default-src 'none'; frame-ancestors 'none'"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert not response.cookies  # no session for an agent


def test_an_agent_is_answered_in_the_language_it_asks_for(client, agent):
    for language, expected in (("en", "enrol the agent again"), ("ja", "エージェント")):
        response = client.post("/agent/v1/checkin", {}, content_type="application/json",
                               HTTP_AUTHORIZATION="Bearer fja_000000000000_nothing",
                               HTTP_ACCEPT_LANGUAGE=language)
        assert response.status_code == 401
        assert expected in response.json()["error"]["message"], language


def test_bad_check_in_fields_are_named(client, token):
    response = call(client, token, "checkin", {"interval": 1, "mode": "daemon"})
    assert response.status_code == 400
    message = response.json()["error"]["message"]
    assert "interval" in message and "mode" in message


def test_a_check_in_hands_out_the_newest_version_with_its_files(client, agent, token,
                                                                certificate):
    run = deploying_run(certificate)
    work = call(client, token, "checkin").json()
    [item] = work["install"]
    version = certificate.current_version
    request = DeployRequest.objects.get(run=run)
    assert item["request"] == request.pk
    assert item["certificate"] == "a.example.test"
    assert item["fingerprint"] == version.fingerprint_sha256
    assert item["files"]["private_key"] == version.private_key
    assert item["files"]["fullchain"] == version.fullchain_pem()


def test_a_report_answers_the_request_records_its_steps_and_ends_the_run(
        client, agent, token, certificate, conclusions, django_capture_on_commit_callbacks):
    run = deploying_run(certificate)
    request = DeployRequest.objects.get(run=run)
    version = certificate.current_version
    with django_capture_on_commit_callbacks(execute=True):
        response = call(client, token, "reports", {
            "request": request.pk, "outcome": "deployed",
            "served_fingerprint": version.fingerprint_sha256,
            "steps": [{"name": "backup", "status": "done", "detail": "2 files"},
                      {"name": "reload", "status": "done"},
                      {"name": "tls_check", "status": "done", "detail": "served"},
                      {"name": "rm -rf", "status": "done"}]})
    assert response.status_code == 200
    run.refresh_from_db()
    assert run.status == RenewalRun.Status.SUCCEEDED
    names = list(run.steps.filter(host=agent).values_list("name", flat=True))
    assert names[:3] == [Step.BACKUP, Step.RELOAD, Step.TLS_CHECK]
    assert "rm -rf" not in names  # not a step of the protocol
    row = Deployment.objects.get(certificate=certificate, host=agent)
    assert (row.last_status, row.served, row.served_checked_by) == (
        Deployment.Status.DEPLOYED, True, "agent")
    # Answered: the next check-in has nothing to install.
    assert call(client, token, "checkin").json()["install"] == []


def test_a_failed_installation_fails_the_run_with_the_agents_words(
        client, agent, token, certificate, conclusions, django_capture_on_commit_callbacks):
    run = deploying_run(certificate)
    request = DeployRequest.objects.get(run=run)
    with django_capture_on_commit_callbacks(execute=True):
        call(client, token, "reports", {
            "request": request.pk, "outcome": "rolled_back", "transient": False,
            "error": "The config test “nginx -t” failed with exit status 1",
            "served_fingerprint": "ab" * 32})
    run.refresh_from_db()
    assert run.status == RenewalRun.Status.FAILED
    assert "nginx -t" in run.error
    row = Deployment.objects.get(certificate=certificate, host=agent)
    assert (row.last_status, row.served) == (Deployment.Status.ROLLED_BACK, False)


def test_an_agent_reads_and_answers_only_its_own_hosts_work(client, organization, agent,
                                                            token, certificate):
    other = agent_host(organization, name="agent2")
    other_token = enrol(client, other)
    run = deploying_run(certificate)
    request = DeployRequest.objects.get(run=run)
    assert call(client, other_token, "checkin").json()["install"] == []
    response = call(client, other_token, "reports", {"request": request.pk,
                                                     "outcome": "deployed"})
    assert (response.status_code, response.json()["error"]["code"]) == (409, "conflict")
    assert DeployRequest.objects.get(pk=request.pk).finished_at is None


def test_a_request_nobody_takes_up_is_answered_as_failed_in_time(
        client, agent, token, certificate, settings, conclusions,
        django_capture_on_commit_callbacks):
    run = deploying_run(certificate)
    later = timezone.now() + timedelta(seconds=settings.AGENT_WAIT_MAX_SECONDS + 1)
    assert agents.answer_unclaimed(now=timezone.now()) == 0
    with django_capture_on_commit_callbacks(execute=True):
        assert agents.answer_unclaimed(now=later) == 1
    run.refresh_from_db()
    assert run.status == RenewalRun.Status.FAILED
    assert run.error_class == "transient"
    assert FailureKind.AGENT_SILENT in str(run.failure_cause)
    assert agent.name in run.error and "did not take the new certificate up" in run.error


def test_recovery_leaves_a_run_waiting_for_its_agent_alone(certificate, settings):
    run = deploying_run(certificate)
    RenewalRun.objects.filter(pk=run.pk).update(
        lease_until=timezone.now() - timedelta(seconds=1))
    assert renewal.recover_stale_runs() == []  # no redrive over SSH, no warning each minute
    run.refresh_from_db()
    assert run.status == RenewalRun.Status.DEPLOYING


# -- challenge files and keys made on the server --------------------------------------


def test_challenge_files_are_handed_out_acknowledged_and_removed(client, agent, token):
    challenge = AgentChallenge.objects.create(
        host=agent, certificate_name="a.example.test",
        path=".well-known/acme-challenge/tok_1", content="tok_1.thumb")
    write = call(client, token, "checkin").json()["challenges"]["write"]
    assert write == [{"id": challenge.pk, "certificate": "a.example.test",
                      "path": ".well-known/acme-challenge/tok_1", "content": "tok_1.thumb"}]
    call(client, token, "challenges", {"written": [challenge.pk]})
    assert call(client, token, "checkin").json()["challenges"] == {"write": [], "remove": []}
    AgentChallenge.objects.filter(pk=challenge.pk).update(remove_requested_at=timezone.now())
    remove = call(client, token, "checkin").json()["challenges"]["remove"]
    assert [item["id"] for item in remove] == [challenge.pk]
    call(client, token, "challenges", {"removed": [challenge.pk]})
    assert call(client, token, "checkin").json()["challenges"]["remove"] == []


def test_a_key_made_on_the_server_is_asked_for_and_its_csr_checked(client, agent, token,
                                                                   certificate):
    certificate.key_on_host = True
    certificate.full_clean()
    certificate.save()
    assert call(client, token, "checkin").json()["csr"] == [
        {"certificate": "a.example.test", "names": ["a.example.test"]}]
    wrong = call(client, token, "csr", {"certificate": "a.example.test",
                                        "csr": csr_for(["b.example.test"])})
    assert wrong.status_code == 400
    assert "b.example.test" in wrong.json()["error"]["message"]
    good = csr_for(["a.example.test"])
    assert call(client, token, "csr", {"certificate": "a.example.test",
                                       "csr": good}).status_code == 200
    certificate.refresh_from_db()
    assert certificate.pending_csr.strip() == good.strip()
    assert call(client, token, "checkin").json()["csr"] == []


def test_a_key_made_on_the_server_needs_exactly_one_agent_host(organization, agent,
                                                               certificate, tmp_path):
    ssh_host = factories.host(organization, factories.ssh_keypair(tmp_path)[0], name="web1")
    Deployment.objects.create(certificate=certificate, host=ssh_host)
    certificate.key_on_host = True
    with pytest.raises(ValidationError) as raised:
        certificate.full_clean()
    assert "key_on_host" in raised.value.message_dict


# -- silence, throttling ----------------------------------------------------------------


def test_an_agent_silent_past_its_intervals_is_told_once(client, agent, token, admin,
                                                         settings):
    call(client, token, "checkin", {"interval": 60})
    long_ago = timezone.now() - timedelta(seconds=60 * settings.AGENT_SILENT_INTERVALS + 5)
    AgentState.objects.filter(host=agent).update(last_seen=long_ago)
    checks.periodic_checks()
    checks.periodic_checks()
    told = Notification.objects.filter(kind=Notification.Kind.AGENT_SILENT, host=agent)
    assert told.count() == 1
    assert [m for m in mail.outbox if agent.name in m.subject]
    # Its next check-in ends the silence; a new silence is told again.
    call(client, token, "checkin", {"interval": 60})
    AgentState.objects.filter(host=agent).update(
        last_seen=long_ago - timedelta(seconds=1))
    checks.periodic_checks()
    assert told.count() == 2


def redis_cache(settings) -> dict:
    """A cache on the Redis the portal runs on (TESTBED.md), in a database of its
    own: the throttle counts there in one round trip, not through Django's API."""
    base = settings.REDIS_URL if settings.REDIS_URL.startswith("redis://") \
        else "redis://127.0.0.1:6379/15"
    return {"BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": base.rsplit("/", 1)[0] + "/12", "KEY_PREFIX": "test-throttle"}


@pytest.fixture(params=["local memory", "Redis"])
def counting_cache(request, settings):
    if request.param == "Redis":
        from django.core.cache import caches
        settings.CACHES = {"default": redis_cache(settings)}
        caches["default"].clear()
        yield caches["default"]
        caches["default"].clear()
    else:
        yield None


def test_check_ins_are_rate_limited_per_host(client, token, settings, counting_cache):
    settings.AGENT_THROTTLE_RATE = "2/min"
    assert call(client, token, "checkin").status_code == 200
    assert call(client, token, "checkin").status_code == 200
    limited = call(client, token, "checkin")
    assert limited.status_code == 429
    assert limited.json()["error"]["code"] == "rate_limited"
    assert int(limited["Retry-After"]) > 0
    if counting_cache is not None:  # the counter ends with its window
        client_ = counting_cache._cache.get_client()
        keys = client_.keys("test-throttle:*agent-throttle:host-*")
        assert len(keys) == 1 and 0 < client_.ttl(keys[0]) <= 61


# -- people ---------------------------------------------------------------------------


def test_an_administrator_makes_a_code_after_entering_the_password_again(client, agent,
                                                                         admin):
    from accounts.tests.factors import reauthenticate

    client.force_login(admin)
    reauthenticate(client, admin)
    page = client.post(reverse("certificates:agent_code", args=[agent.pk]))
    assert page.status_code == 200
    html = page.content.decode()
    assert "fujissl-agent enrol --url http://testserver --code " in html
    code = html.split('id="agent-code">')[1].split("<")[0]
    assert client.post("/agent/v1/enrol", {"code": code},
                       content_type="application/json").status_code == 201


def test_an_operator_may_not_make_a_code(client, agent, operator):
    client.force_login(operator)
    response = client.post(reverse("certificates:agent_code", args=[agent.pk]))
    assert response.status_code == 403
    assert not AgentEnrolment.objects.exists()


def test_the_hosts_page_shows_the_agents_state(client, agent, token, owner, certificate):
    call(client, token, "checkin", {"agent_version": "1.0.0", "mode": "run", "certificates": {
        "other.example.test": {"document_root": True}}})
    client.force_login(owner)
    html = client.get(reverse("certificates:host", args=[agent.pk])).content.decode()
    assert "1.0.0" in html
    assert 'id="agent-unconfigured"' in html and "a.example.test" in html
    listing = client.get(reverse("certificates:hosts")).content.decode()
    assert "Agent" in listing


def test_the_dashboard_names_an_agent_told_silent(client, agent, token, owner, settings):
    call(client, token, "checkin", {"interval": 60})
    client.force_login(owner)
    assert f'href="/hosts/{agent.pk}/"' not in client.get("/").content.decode()
    long_ago = timezone.now() - timedelta(seconds=60 * settings.AGENT_SILENT_INTERVALS + 5)
    AgentState.objects.filter(host=agent).update(last_seen=long_ago)
    checks.periodic_checks()
    html = client.get("/").content.decode()
    assert "Agent silent" in html and agent.name in html
