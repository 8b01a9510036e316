"""Shared fixtures: the testbed's real peers, the browser, and the personas every
test speaks of.

The personas (DESIGN.md, house style 8): an owner, an administrator, an
operator and a viewer of one organisation, and an outsider who belongs to
another and must be refused.
"""

import os

import pytest

from accounts.models import Membership, Organization, Role

pytest_plugins = ["testbed.fixtures", "certificates.tests.browser"]


@pytest.fixture(autouse=True)
def _empty_cache():
    """Rows of one test reuse the ids of another's; nothing cached may carry over."""
    from django.core.cache import cache

    cache.clear()


@pytest.fixture(autouse=True)
def _no_kept_connections():
    """Each test starts with no SSH login or ACME client kept from another: its
    hosts and CAs are new, and a test that restarts a peer must meet the
    restarted one."""
    from certificates.seams import acme, ssh

    ssh.forget_kept_logins()
    acme.forget_kept_clients()
    yield
    ssh.forget_kept_logins()
    acme.forget_kept_clients()


@pytest.fixture(autouse=True)
def _default_language_after_each_test():
    """A page fetched by the test client leaves its language active in this
    thread; put the default back so that no test depends on the one before."""
    from django.utils import translation

    yield
    translation.deactivate()


@pytest.fixture(autouse=True)
def _dns_lookups_through_bind(request):
    """A test with the testbed's BIND looks zones and name servers up there (it
    forwards example.net to PowerDNS), and asks authoritative servers on its port."""
    if "bind_dns" not in request.fixturenames:
        yield
        return
    bind_dns = request.getfixturevalue("bind_dns")
    settings = request.getfixturevalue("settings")
    settings.DNS_RESOLVERS = [f"{bind_dns.address}:{bind_dns.port}"]
    settings.DNS_AUTHORITATIVE_PORT = bind_dns.port
    yield


@pytest.fixture
def organization(db):
    return Organization.objects.create(name="Msen", slug="msen")


@pytest.fixture
def other_organization(db):
    return Organization.objects.create(name="Elsewhere", slug="elsewhere")


def _member(django_user_model, organization, username, role):
    user = django_user_model.objects.create_user(username=username, password="pw-" + username,
                                                 email=f"{username}@example.test")
    Membership.objects.create(user=user, organization=organization, role=role)
    if role in (Role.OWNER, Role.ADMIN):
        # Owners and administrators must sign in with a second factor; the
        # personas have theirs (accounts/tests/factors.py computes its codes).
        from accounts.tests.factors import give_totp

        give_totp(user)
    return user


@pytest.fixture
def owner(django_user_model, organization):
    return _member(django_user_model, organization, "owner", Role.OWNER)


@pytest.fixture
def admin(django_user_model, organization):
    return _member(django_user_model, organization, "admin", Role.ADMIN)


@pytest.fixture
def operator(django_user_model, organization):
    return _member(django_user_model, organization, "operator", Role.OPERATOR)


@pytest.fixture
def viewer(django_user_model, organization):
    return _member(django_user_model, organization, "viewer", Role.VIEWER)


@pytest.fixture
def outsider(django_user_model, other_organization):
    return _member(django_user_model, other_organization, "outsider", Role.OWNER)


@pytest.fixture
def postgresql_only():
    """Skips the test on SQLite (development); CI tests against PostgreSQL, so
    there a skip would hide a missing database: it fails instead."""
    from django.db import connection

    if connection.vendor != "postgresql":
        assert not os.environ.get("CI"), "CI tests against PostgreSQL"
        pytest.skip("PostgreSQL only (SQLite is for development)")


@pytest.fixture
def world(organization, tmp_path):
    """One of every tenant-owned object in the organisation, the certificate's
    version current (certificates/tests/factories.py, one_of_everything)."""
    from certificates.tests.factories import one_of_everything

    made = one_of_everything(organization, tmp_path)
    made["certificate"].current_version = made["version"]
    made["certificate"].save()
    return made


def _database_url_for_other_processes():
    """DATABASE_URL naming the test database, for workers started by a test."""
    from urllib.parse import quote

    from django.db import connection

    db = connection.settings_dict
    if db["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{db['NAME']}"
    credentials = quote(db["USER"] or "")
    if db["PASSWORD"]:
        credentials += ":" + quote(db["PASSWORD"])
    return f"postgres://{credentials}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


class CeleryProcesses:
    """Real Celery workers and beat in processes of their own, on the configured
    broker and the test database; all stopped when the test ends."""

    def __init__(self, tmp_path):
        self.tmp_path, self.processes = tmp_path, []

    def _start(self, role, args, env, ready):
        import os
        import subprocess
        import sys
        import time

        log = self.tmp_path / f"{role}-{len(self.processes)}.log"
        environment = {**os.environ, "DATABASE_URL": _database_url_for_other_processes(),
                       **{k: str(v) for k, v in env.items()}}
        with log.open("w") as sink:
            process = subprocess.Popen(
                [sys.executable, "-m", "celery", "-A", "fujissl_portal", role, *args],
                env=environment, stdout=sink, stderr=subprocess.STDOUT,
                start_new_session=True)
        process.log = log
        self.processes.append(process)
        deadline = time.monotonic() + 60
        while ready not in log.read_text():
            if process.poll() is not None or time.monotonic() > deadline:
                self.kill(process)
                pytest.fail(f"Celery {role} did not start:\n{log.read_text()[-3000:]}")
            time.sleep(0.2)
        return process

    def worker(self, **env):
        """A worker serving every queue, one task at a time."""
        import os

        from django.conf import settings

        name = f"test-{os.getpid()}-{len(self.processes)}@%h"
        return self._start("worker", ["--pool=solo", "--loglevel=INFO", "--without-gossip",
                                      "--without-mingle", "-n", name,
                                      "-Q", settings.CELERY_WORKER_QUEUES], env, " ready.")

    def beat(self, **env):
        schedule = self.tmp_path / f"beat-{len(self.processes)}"
        return self._start("beat", ["--loglevel=INFO", "--schedule", str(schedule)], env,
                           "beat: Starting")

    @staticmethod
    def kill(process, sig=None):
        import os
        import signal

        try:
            os.killpg(process.pid, sig or signal.SIGKILL)
        except ProcessLookupError:
            pass
        process.wait()

    def stop_all(self):
        import signal
        import subprocess

        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill(process)


@pytest.fixture
def celery_processes(transactional_db, tmp_path):
    """Start real Celery workers and beat: ``celery_processes.worker(**env)``,
    ``.beat(**env)``. Committed rows only, hence transactional_db."""
    from fujissl_portal.celery import app

    app.control.purge()  # nothing left over from an earlier run may reach these workers
    processes = CeleryProcesses(tmp_path)
    yield processes
    processes.stop_all()


@pytest.fixture
def celery_worker_process(celery_processes):
    """One real Celery worker (see celery_processes)."""
    return celery_processes.worker()
