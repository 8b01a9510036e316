"""What an incident's progress says while it runs, on its page and in the API:
replaced, in progress, failed with the reasons and the next try, and the time
left against the deadline, late when the pace would miss it."""

import datetime

import pytest
from django.urls import reverse
from django.utils import timezone

from certificates import tasks
from certificates.incidents import service
from certificates.incidents.selection import Filter
from certificates.models import Deployment, Incident, IncidentCertificate, RenewalRun
from certificates.renewal import lifecycle
from certificates.renewal import run as run_service
from certificates.renewal.issuance import IssuanceFailed
from certificates.tests import factories

pytestmark = pytest.mark.django_db

HOUR = datetime.timedelta(hours=1)


@pytest.fixture
def incident(organization, admin, tmp_path, monkeypatch, django_capture_on_commit_callbacks):
    """Three certificates in a running incident, none of its messages sent."""
    monkeypatch.setattr(tasks.renew, "apply_async", lambda *args, **kwargs: None)
    ca = factories.ca_account(organization, price=0)
    host = factories.host(organization, factories.ssh_keypair(tmp_path)[0])
    for name in ("a.example.test", "b.example.test", "c.example.test"):
        cert = factories.certificate(organization, ca, common_name=name, sans=[name])
        factories.make_current(cert, factories.new_version(cert, name))
        Deployment.objects.create(certificate=cert, host=host)
    with django_capture_on_commit_callbacks(execute=True):
        return service.start(organization=organization, name="CA bug", chosen=Filter(),
                             deadline=timezone.now() + 2 * HOUR, by=admin)


def fail_one(incident, name, error):
    run = RenewalRun.objects.get(incident=incident, certificate__common_name=name)
    run_service.fail(lifecycle.claim(run.pk), IssuanceFailed(error, transient=True))


def test_failures_are_counted_with_their_reasons_on_the_page_and_in_the_api(
    incident, admin, client
):
    from api.tests.conftest import client_for, make_token

    fail_one(incident, "a.example.test", "The CA is down.")
    fail_one(incident, "b.example.test", "The CA is down.")

    progress = service.progress(incident)
    assert (progress.total, progress.replaced, progress.in_progress, progress.failing) == (
        3, 0, 1, 2)
    assert progress.reasons == [("The CA is down.", 2)]

    client.force_login(admin)
    page = client.get(reverse("certificates:incident", args=[incident.pk])).content.decode()
    assert 'id="incident-failing" class="bad-text">2<' in page
    assert 'id="incident-in-progress">1<' in page
    assert "<li>The CA is down. (2)</li>" in page
    assert page.count('href="/certificates/') >= 2  # each failing certificate, linked
    assert 'id="incident-time-left"' in page and "in 1 hour" in page

    api = client_for(make_token(admin)[1])
    body = api.get(f"/api/v1/incidents/{incident.pk}/").json()["progress"]
    assert (body["failing"], body["in_progress"], body["remaining"]) == (2, 1, 3)
    assert body["reasons"] == [["The CA is down.", 2]]
    assert 0 < body["seconds_left"] <= 2 * 3600


def test_a_failure_retried_is_in_progress_again_and_the_pace_says_when_it_ends(
    incident, admin, client
):
    fail_one(incident, "a.example.test", "The CA is down.")
    IncidentCertificate.objects.filter(incident=incident).update(next_try_at=timezone.now())
    assert service.advance(incident) == 1  # retried: no longer counted as failing
    assert service.progress(incident).failing == 0

    # One of three replaced in the first 90 minutes: the other two take three
    # hours more at this pace, past the deadline 30 minutes away.
    started = timezone.now() - datetime.timedelta(minutes=90)
    Incident.objects.filter(pk=incident.pk).update(created_at=started)
    incident.refresh_from_db()
    item = IncidentCertificate.objects.filter(incident=incident).first()
    IncidentCertificate.objects.filter(pk=item.pk).update(replaced_at=timezone.now())
    progress = service.progress(incident)
    assert progress.replaced == 1 and progress.late
    assert abs(progress.expected_end - (timezone.now() + 3 * HOUR)) < datetime.timedelta(
        minutes=1)

    client.force_login(admin)
    page = client.get(reverse("certificates:incident", args=[incident.pk])).content.decode()
    assert 'id="incident-expected" class="bad-text"' in page and "after the deadline" in page

    Incident.objects.filter(pk=incident.pk).update(deadline=timezone.now() - HOUR)
    page = client.get(reverse("certificates:incident", args=[incident.pk])).content.decode()
    assert 'id="incident-time-left">passed<' in page
