""""Deploy now" from the UI and from the API are one service: the same
deploy-only run, carried through with steps like any other, against a real
host (sshd + nginx of the testbed)."""

import pytest
from django.urls import reverse

from certificates import renewal
from certificates.models import Deployment, RenewalRun
from certificates.tests import factories
from certificates.tests.factories import make_current, new_version, portal_host


@pytest.fixture
def api(owner, as_user):
    return as_user(owner)


def carried_through(run_id) -> RenewalRun:
    renewal.execute(run_id=run_id, inline=True)
    return RenewalRun.objects.get(pk=run_id)


def shape(run):
    return (run.intent, run.hosts, run.status, run.version_id,
            [(step.name, step.status, step.host_id) for step in run.steps.all()])


@pytest.mark.django_db(transaction=True)
def test_deploy_now_from_the_ui_and_from_the_api_make_the_same_run_with_steps(
        client, api, owner, organization, target_host):
    host = portal_host(organization, target_host)
    certificate = factories.certificate(organization, factories.ca_account(organization),
                                        common_name=target_host.sni_name,
                                        sans=[target_host.sni_name])
    Deployment.objects.create(certificate=certificate, host=host)
    version = new_version(certificate, target_host.sni_name)
    make_current(certificate, version)
    client.force_login(owner)

    client.post(reverse("certificates:deploy", args=[certificate.pk]), {"host": [host.pk]})
    from_ui = carried_through(RenewalRun.objects.get(certificate=certificate).pk)
    response = api.post(f"/api/v1/certificates/{certificate.pk}/deploy/",
                        {"hosts": [host.pk]}, format="json")
    from_api = carried_through(response.json()["id"])

    assert from_ui.pk != from_api.pk
    assert (from_ui.trigger, from_api.trigger) == ("manual", "api")
    assert shape(from_ui) == shape(from_api)
    assert from_ui.status == RenewalRun.Status.SUCCEEDED, from_ui.error
    names = [name for name, _status, _host in shape(from_ui)[-1]]
    for step in ("connect", "upload", "install", "config_test", "reload", "tls_check"):
        assert step in names
    assert "order" not in names and "charge" not in names  # deploy only
    target_host.wait_for_served_leaf(version.fingerprint_sha256)
