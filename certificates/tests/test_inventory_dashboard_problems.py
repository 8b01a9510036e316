"""Monitored endpoints among the dashboard's open problems: one that does not
verify, one serving an unmanaged certificate that expires within the alert
threshold, one whose unmanaged certificate changed lately; each marked as a
monitored endpoint and linking to it. Nothing else of the dashboard."""

import datetime
import re

import pytest
from django.urls import reverse
from django.utils import timezone

from certificates.inventory import monitoring
from certificates.models import EndpointCheck, MonitoredEndpoint
from certificates.tests.factories import ca_account, certificate, unmanaged_rows

pytestmark = pytest.mark.django_db


def problems_of(client) -> dict[str, str]:
    """The dashboard's endpoint problems: {endpoint id: the item's text}."""
    html = client.get(reverse("certificates:dashboard"), HTTP_ACCEPT_LANGUAGE="en")
    html = html.content.decode()
    section = html[html.index('id="problems"'):]
    section = section[:section.index("</section>")]
    items = re.findall(r'<li class="problem endpoint-problem" data-endpoint="(\d+)">(.*?)</li>',
                       section, re.S)
    return {int(pk): re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", body)) for pk, body in items}


def endpoint(organization, row, name, **fields):
    fields = {"result": "ok", **fields}
    return MonitoredEndpoint.objects.create(
        organization=organization, address=f"{name}.example.test", certificate=row,
        served_fingerprint=row.fingerprint_sha256 if row else "",
        last_checked_at=timezone.now(), **fields)


def test_failing_expiring_and_changed_endpoints_are_open_problems(
        organization, other_organization, owner, client, settings):
    settings.EXPIRY_WARNING_DAYS = 14
    now = timezone.now()
    rows = unmanaged_rows(organization, 8, seed=1)
    MonitoredEndpoint.objects.all().delete()
    for days, row in zip([5, 200, 200, 200, 200, 200, 5, 200], rows, strict=True):
        type(row).objects.filter(pk=row.pk).update(expires_at=now + datetime.timedelta(days))
    failing = endpoint(organization, rows[1], "failing", result="problem", problems=[
        {"code": "name", "params": {"name": "failing.example.test"}}])
    expiring = endpoint(organization, rows[0], "expiring")
    changed = endpoint(organization, rows[2], "changed")
    EndpointCheck.objects.create(endpoint=changed, changed=True, result="ok",
                                 checked_at=now - datetime.timedelta(days=1))
    long_ago = endpoint(organization, rows[3], "long-ago")
    EndpointCheck.objects.create(endpoint=long_ago, changed=True, result="ok",
                                 checked_at=now - datetime.timedelta(days=10))
    fine = endpoint(organization, rows[4], "fine")
    managed = certificate(organization, ca_account(organization), common_name="m.example.test")
    renewed = endpoint(organization, rows[5], "renewed", managed_certificate=managed)
    EndpointCheck.objects.create(endpoint=renewed, changed=True, result="ok")
    stopped = endpoint(organization, rows[6], "stopped", enabled=False, result="problem")
    unreachable = endpoint(organization, None, "unreachable", result="unreachable", problems=[
        {"code": "starttls_not_offered", "params": {"protocol": "SMTP"}}])
    elsewhere = endpoint(other_organization, None, "elsewhere", result="problem")
    client.force_login(owner)

    shown = problems_of(client)

    assert list(shown) == [failing.pk, unreachable.pk, expiring.pk, changed.pk]
    assert "Does not verify" in shown[failing.pk]
    assert "not valid for the name failing.example.test" in shown[failing.pk]
    assert "The SMTP server does not offer STARTTLS." in shown[unreachable.pk]
    assert "Expires soon" in shown[expiring.pk] and str(rows[0]) in shown[expiring.pk]
    assert "Served certificate changed" in shown[changed.pk]
    assert all("Monitored endpoint, unmanaged" in text for text in shown.values())
    assert not {long_ago.pk, fine.pk, renewed.pk, stopped.pk, elsewhere.pk} & set(shown)
    page = client.get(reverse("certificates:dashboard")).content.decode()
    assert reverse("certificates:endpoint", args=[failing.pk]) in page
    assert "Nothing needs you right now" not in page


def test_a_managed_certificate_that_does_not_verify_at_an_endpoint_is_marked_monitored(
        organization, owner, client):
    managed = certificate(organization, ca_account(organization), common_name="m.example.test")
    served = endpoint(organization, None, "managed", managed_certificate=managed,
                      result="problem")
    client.force_login(owner)
    text = problems_of(client)[served.pk]
    assert "Monitored endpoint" in text and "unmanaged" not in text


def test_beyond_five_the_list_says_how_many_in_all(organization, owner, client):
    for i in range(7):
        endpoint(organization, None, f"e{i}", result="problem")
    client.force_login(owner)
    assert len(problems_of(client)) == 5
    page = client.get(reverse("certificates:dashboard"), HTTP_ACCEPT_LANGUAGE="en")
    assert "7 monitored endpoints need a look in all" in page.content.decode()


def test_an_endpoint_whose_served_chain_fails_a_real_check_shows_up(organization, owner,
                                                                    client, exim_smtp):
    watched = monitoring.watch(organization, address="127.0.0.1",
                               port=exim_smtp.starttls_port, sni_name="mail.example.test",
                               protocol="smtp")
    check = monitoring.check(watched.pk)  # the mail server's CA is trusted by nobody here
    assert check.result == "problem"
    client.force_login(owner)
    text = problems_of(client)[watched.pk]
    assert "Does not verify" in text and "does not lead to a trusted root" in text
