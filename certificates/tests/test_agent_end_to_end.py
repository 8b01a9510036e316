"""The agent for real: downloaded from the portal (served by gunicorn over TLS on
loopback), run as a subprocess "on" a testbed host (its nginx, webroot and
files; the portal has no SSH settings for the host at all, so no inbound login
is used), against Pebble and a real Celery worker and beat."""

import datetime
import hashlib
import os
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from django.utils import timezone

from certificates import renewal
from certificates.hosts import agents
from certificates.models import (
    AgentState,
    Certificate,
    CertificateVersion,
    Deployment,
    Notification,
    RenewalRun,
)
from certificates.renewal import checks
from certificates.steps import Step
from testbed.ports import free_port

from .factories import agent_host, ca_account, http01_certificate
from .pki import cert_pem, issue, key_pem, private_key
from .waiting import finished, run_of, wait_for


class Portal:
    """The portal served by gunicorn over TLS at https://localhost:<port>, its
    certificate issued by a CA of the test's own (``ca_file``)."""

    def __init__(self, tmp_path: Path):
        self.folder = tmp_path / "portal"
        self.folder.mkdir()
        ca_key, leaf_key = private_key(), private_key()
        ca = issue("Portal test CA", ca_key.public_key(), ca_key, ca=True)
        leaf = issue("localhost", leaf_key.public_key(), ca_key, issuer="Portal test CA",
                     names=["localhost"], ca=False)
        self.ca_file = self.folder / "ca.pem"
        self.ca_file.write_text(cert_pem(ca))
        (self.folder / "cert.pem").write_text(cert_pem(leaf))
        (self.folder / "key.pem").write_text(key_pem(leaf_key))
        self.port = free_port("127.0.0.1")
        self.url = f"https://localhost:{self.port}"
        self.log = self.folder / "gunicorn.log"
        self.process = None

    def start(self, env):
        from conftest import _database_url_for_other_processes

        environment = {**os.environ, "DATABASE_URL": _database_url_for_other_processes(),
                       **{k: str(v) for k, v in env.items()}}
        with self.log.open("a") as sink:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "gunicorn", "fujissl_portal.wsgi", "-k", "gthread",
                 "-w", "1", "--threads", "8", "-b", f"127.0.0.1:{self.port}",
                 "--certfile", str(self.folder / "cert.pem"),
                 "--keyfile", str(self.folder / "key.pem")],
                env=environment, stdout=sink, stderr=subprocess.STDOUT,
                start_new_session=True)
        wait_for(self._answers, 60, "gunicorn", self)

    def _answers(self):
        try:
            self.get("/agent/download/SHA256SUMS")
            return True
        except OSError:
            return False

    def get(self, path) -> bytes:
        import ssl

        context = ssl.create_default_context(cafile=str(self.ca_file))
        with urllib.request.urlopen(self.url + path, context=context, timeout=30) as response:
            return response.read()

    def stop(self):
        """At once (SIGINT: gunicorn's quick shutdown), not after the long polls
        in flight end; killed if it does not go."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGINT)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()


class AgentOnHost:
    """The agent, as downloaded from the portal, configured for a testbed host."""

    def __init__(self, tmp_path: Path, portal: Portal, testbed):
        self.folder = tmp_path / "agent"
        self.folder.mkdir()
        self.portal, self.testbed = portal, testbed
        self.pyz = self.folder / "fujissl-agent.pyz"
        self.config = self.folder / "agent.conf"
        self.log = self.folder / "serve.log"
        self.serving = None

    def download(self):
        """The single file and its checksum from the portal, checked as the README says."""
        data = self.portal.get("/agent/download/fujissl-agent.pyz")
        sums = self.portal.get("/agent/download/SHA256SUMS").decode()
        assert f"{hashlib.sha256(data).hexdigest()}  fujissl-agent.pyz" in sums
        self.pyz.write_bytes(data)

    def configure(self, name, *, config_test=None, key_on_host=False, interval=60):
        t = self.testbed
        self.config.write_text(f"""\
[agent]
url = {self.portal.url}
ca_file = {self.portal.ca_file}
state_dir = {self.folder / "state"}
interval = {interval}
tls_grace = 10

[{name}]
private_key = {t.private_key_path}
certificate = {t.certificate_path}
ca_bundle = {t.ca_bundle_path}
fullchain = {t.fullchain_path}
document_root = {t.webroot}
backup_dir = {t.backup_dir}
config_test = {config_test or t.config_test_command}
reload = {t.reload_command}
tls_check = {t.address}:{t.tls_port}
key_on_host = {"yes" if key_on_host else "no"}
""")

    def __call__(self, *args, timeout=120):
        return subprocess.run([sys.executable, str(self.pyz), "--config", str(self.config),
                               *args], capture_output=True, text=True, timeout=timeout)

    def serve(self):
        sink = self.log.open("a")
        self.serving = subprocess.Popen(
            [sys.executable, str(self.pyz), "--config", str(self.config), "serve"],
            stdout=sink, stderr=subprocess.STDOUT, start_new_session=True)

    def stop(self):
        if self.serving is not None and self.serving.poll() is None:
            os.killpg(self.serving.pid, signal.SIGTERM)
            self.serving.wait(timeout=30)
        self.serving = None


@pytest.fixture
def portal(tmp_path, pebble, celery_processes):
    served = Portal(tmp_path)
    served.start({"ACME_CA_BUNDLE": pebble.ca_bundle})
    yield served
    served.stop()


@pytest.fixture
def worker(celery_processes, pebble):
    return celery_processes.worker(ACME_CA_BUNDLE=pebble.ca_bundle,
                                   DEPLOY_TLS_GRACE_SECONDS=10)


@pytest.fixture
def on_host(tmp_path, portal, target_host):
    agent = AgentOnHost(tmp_path, portal, target_host)
    agent.download()
    yield agent
    agent.stop()


def agent_host_for(organization, testbed):
    """The portal's record of the testbed host as an agent host: no SSH settings;
    the portal checks the served certificate itself at the host's TLS port."""
    return agent_host(organization, name=testbed.name, tls_check_address=testbed.address,
                      tls_check_port=testbed.tls_port, tls_sni_name=testbed.sni_name)


def enrolled(on_host, host):
    _enrolment, code = agents.make_enrolment_code(host)
    done = on_host("enrol", "--url", on_host.portal.url, "--code", code,
                   "--ca-file", str(on_host.portal.ca_file))
    assert done.returncode == 0, done.stderr
    return code


def served(testbed):
    return testbed.served_leaf_sha256()


def test_an_agent_host_is_issued_deployed_renewed_and_rolled_back_with_no_inbound_login(
        organization, settings, pebble, portal, worker, celery_processes, on_host,
        target_host):
    settings.ACME_CA_BUNDLE = str(pebble.ca_bundle)
    host = agent_host_for(organization, target_host)
    ca = ca_account(organization, directory_url=pebble.directory_url, price=0)
    cert = http01_certificate(organization, ca, host, [target_host.name])
    on_host.configure(target_host.name)

    code = enrolled(on_host, host)
    again = on_host("enrol", "--url", portal.url, "--code", code,
                    "--ca-file", str(portal.ca_file))
    assert again.returncode == 2 and "used already" in again.stderr
    before = served(target_host)
    on_host.serve()

    # Issued by HTTP-01 through the files the agent wrote, installed, served.
    renewal.start_run(certificate_id=cert.pk, trigger=RenewalRun.Trigger.MANUAL)
    wait_for(finished(cert), 120, "the first issuance", worker, on_host, portal)
    run = run_of(cert)
    assert run.status == RenewalRun.Status.SUCCEEDED, (run.error, list(run.steps.values()))
    steps = list(run.steps.values_list("name", "status", "detail"))
    assert (Step.CHALLENGE, "done") in [(n, s) for n, s, _d in steps]
    assert any(n == Step.CHALLENGE and "written by the agent" in d for n, _s, d in steps)
    for name in (Step.BACKUP, Step.RELOAD, Step.TLS_CHECK):
        assert (name, "done") in [(n, s) for n, s, _d in steps], name
    cert.refresh_from_db()
    first = cert.current_version.fingerprint_sha256
    target_host.wait_for_served_leaf(first)
    row = Deployment.objects.get(certificate=cert, host=host)
    assert (row.served, row.served_checked_by) == (True, "portal")  # both checks agree
    assert list(target_host.webroot.glob(".well-known/acme-challenge/*")) == []
    assert any(target_host.backup_dir.iterdir())  # the files it replaced, kept
    status = on_host("status", "--json")
    assert first in status.stdout

    # Renewed again with nobody acting: beat finds it due, the agent installs it.
    beat = celery_processes.beat(RENEWAL_SCAN_SECONDS=1)
    Certificate.objects.filter(pk=cert.pk).update(
        renew_after=timezone.now() - datetime.timedelta(minutes=1))
    wait_for(finished(cert, after=run.pk), 120, "the scheduled renewal", worker, beat, on_host)
    second_run = run_of(cert)
    assert second_run.trigger == RenewalRun.Trigger.SCHEDULE
    assert second_run.status == RenewalRun.Status.SUCCEEDED, second_run.error
    cert.refresh_from_db()
    second = cert.current_version.fingerprint_sha256
    assert second != first and second != before
    target_host.wait_for_served_leaf(second)
    celery_processes.kill(beat)

    # A broken config test: the agent rolls back, the old certificate stays served.
    on_host.stop()
    on_host.configure(target_host.name, config_test="sh -c 'echo broken >&2; exit 1'")
    on_host.serve()
    renewal.start_run(certificate_id=cert.pk, trigger=RenewalRun.Trigger.MANUAL)
    wait_for(finished(cert, after=second_run.pk), 120, "the failing deployment", worker, on_host)
    failed = run_of(cert)
    assert failed.status == RenewalRun.Status.FAILED
    assert "broken" in failed.error or "config test" in failed.error.lower(), failed.error
    assert Deployment.objects.get(certificate=cert, host=host).last_status == (
        Deployment.Status.ROLLED_BACK)
    assert served(target_host) == second
    assert failed.steps.filter(name=Step.ROLLBACK, status="done").exists()
    on_host.stop()

    # A revoked credential stops the agent with a message that says so.
    agents.revoke(host)
    refused = on_host("run")
    assert refused.returncode == 3, refused.stderr
    assert "revoked" in refused.stderr

    # A portal that cannot be reached: files left alone, a non-zero exit.
    files = {p: p.read_bytes() for p in (target_host.certificate_path,
                                         target_host.private_key_path)}
    portal.stop()
    unreachable = on_host("run")
    assert unreachable.returncode == 1, unreachable.stderr
    assert {p: p.read_bytes() for p in files} == files


def test_a_key_made_on_the_server_never_reaches_the_portal(
        organization, settings, pebble, portal, worker, on_host, target_host):
    settings.ACME_CA_BUNDLE = str(pebble.ca_bundle)
    host = agent_host_for(organization, target_host)
    ca = ca_account(organization, directory_url=pebble.directory_url, price=0)
    cert = http01_certificate(organization, ca, host, [target_host.name])
    cert.key_on_host = True  # once bound to its one agent host, as the form allows
    cert.full_clean()
    cert.save()
    on_host.configure(target_host.name, key_on_host=True)
    enrolled(on_host, host)
    on_host.serve()

    renewal.start_run(certificate_id=cert.pk, trigger=RenewalRun.Trigger.MANUAL)
    wait_for(finished(cert), 120, "the issuance with the server's key", worker, on_host)
    run = run_of(cert)
    assert run.status == RenewalRun.Status.SUCCEEDED, (run.error, list(run.steps.values()))
    cert.refresh_from_db()
    target_host.wait_for_served_leaf(cert.current_version.fingerprint_sha256)
    # The portal's database holds no private key for this certificate.
    assert list(CertificateVersion.objects.filter(certificate=cert)
                .values_list("private_key", flat=True)) == [""]
    assert list(RenewalRun.objects.filter(certificate=cert)
                .values_list("private_key", flat=True)) == [""]
    # The key on the server is the certificate's.
    leaf = x509.load_pem_x509_certificate(target_host.certificate_path.read_bytes())
    key = serialization.load_pem_private_key(target_host.private_key_path.read_bytes(), None)
    spki = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    assert leaf.public_key().public_bytes(*spki) == key.public_key().public_bytes(*spki)
    # The agent prepares the next key's CSR after installing.
    wait_for(lambda: Certificate.objects.get(pk=cert.pk).pending_csr, 30,
             "the next CSR", on_host)


def test_an_agent_silent_past_its_interval_raises_one_alert(
        organization, owner, portal, on_host, target_host, settings):
    owner.email = "owner@example.test"
    owner.save()
    host = agent_host_for(organization, target_host)
    on_host.configure(target_host.name, interval=60)
    enrolled(on_host, host)
    assert on_host("run").returncode == 0
    seen = AgentState.objects.get(host=host).last_seen
    later = seen + datetime.timedelta(seconds=60 * settings.AGENT_SILENT_INTERVALS + 1)
    checks.periodic_checks(now=seen + datetime.timedelta(seconds=61))
    assert not Notification.objects.filter(kind=Notification.Kind.AGENT_SILENT).exists()
    checks.periodic_checks(now=later)
    checks.periodic_checks(now=later + datetime.timedelta(minutes=15))
    told = Notification.objects.filter(kind=Notification.Kind.AGENT_SILENT, host=host)
    assert told.count() == 1
    assert told.get().recipient == "owner@example.test"
