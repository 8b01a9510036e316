"""Shared fixtures: the testbed's real peers, and the personas every test speaks of.

The personas (DESIGN.md, house style 8): an owner and an operator of one
organisation, and an outsider who belongs to another and must be refused.
"""

import pytest

from accounts.models import Membership, Organization, Role

pytest_plugins = ["testbed.fixtures"]


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
    return user


@pytest.fixture
def owner(django_user_model, organization):
    return _member(django_user_model, organization, "owner", Role.OWNER)


@pytest.fixture
def operator(django_user_model, organization):
    return _member(django_user_model, organization, "operator", Role.OPERATOR)


@pytest.fixture
def outsider(django_user_model, other_organization):
    return _member(django_user_model, other_organization, "outsider", Role.OWNER)


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


@pytest.fixture
def celery_worker_process(transactional_db, tmp_path):
    """A real Celery worker in its own process, on the configured broker and the
    test database (committed rows only: hence transactional_db)."""
    import os
    import subprocess
    import sys
    import time

    from fujissl_portal.celery import app

    app.control.purge()  # nothing left over from an earlier run may reach this worker
    log = tmp_path / "worker.log"
    env = {**os.environ, "DATABASE_URL": _database_url_for_other_processes()}
    with log.open("w") as sink:
        worker = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "fujissl_portal", "worker", "--pool=solo",
             "--loglevel=INFO", "--without-gossip", "--without-mingle", "-n",
             f"test-{os.getpid()}@%h"],
            env=env, stdout=sink, stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + 60
    while " ready." not in log.read_text():
        if worker.poll() is not None or time.monotonic() > deadline:
            worker.kill()
            pytest.fail(f"the Celery worker did not start:\n{log.read_text()[-3000:]}")
        time.sleep(0.2)
    worker.log = log
    yield worker
    worker.terminate()
    try:
        worker.wait(timeout=20)
    except subprocess.TimeoutExpired:
        worker.kill()
