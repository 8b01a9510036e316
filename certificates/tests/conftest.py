"""Fixtures of the deployment tests: the testbed host as the portal knows it, a
certificate for its name with a current version, a host serving several sites,
conclusions run in the test instead of a worker; and an owner with an address
for the tests of what is mailed."""

import pytest

from certificates import renewal
from certificates.models import TargetHost

from . import factories
from .factories import make_current, new_version, portal_host, sites_host
from .installing import SITES


@pytest.fixture
def owner_with_mail(owner):
    owner.email = "owner@example.test"
    owner.save()
    return owner


@pytest.fixture
def ca(organization):
    return factories.ca_account(organization)


@pytest.fixture
def host(organization, target_host):
    return portal_host(organization, target_host)


@pytest.fixture
def certificate(organization, ca, target_host):
    return factories.certificate(organization, ca, common_name=target_host.sni_name,
                                 sans=[target_host.sni_name])


@pytest.fixture
def version(certificate, target_host):
    version = new_version(certificate, target_host.sni_name)
    make_current(certificate, version)
    return version


@pytest.fixture
def fast_grace(settings):
    """A short TLS grace period, for tests where the new leaf never comes."""
    settings.DEPLOY_TLS_GRACE_SECONDS = 1.5


@pytest.fixture
def shared_host(organization, target_host):
    """The testbed host serving SITES, each from files of its own ({name} paths),
    its reloads counted in a file beside it."""
    reloads = target_host.backup_dir.parent / "reloads"
    reloads.write_text("")
    host = sites_host(organization, target_host, SITES,
                      reload_command=f"echo reload >> {reloads} && {target_host.reload_command}")
    host.reloads = lambda: len(reloads.read_text().splitlines())
    return host


@pytest.fixture
def conclusions(monkeypatch):
    """Conclusions enqueued by a drain run here, at once, instead of in a worker;
    each is listed with whether every host was free when it was enqueued."""
    from certificates import tasks

    enqueued = []

    def conclude_here(run_ids):
        free = not TargetHost.objects.exclude(deploy_lock_owner="").exists()
        for run_id in run_ids:
            enqueued.append((run_id, free))
            renewal.conclude(run_id)

    monkeypatch.setattr(tasks.conclude_runs, "delay", conclude_here)
    return enqueued
