"""An incident's deadline must be in the future: a past one is refused on the
page, in the API and by the service, with an error naming the deadline and
nothing started, reserved or ordered."""

import datetime
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse
from django.utils import timezone

from accounts.tests.factors import reauthenticate
from api.tests.conftest import client_for, make_token
from certificates.incidents import service
from certificates.incidents.selection import Filter
from certificates.models import Incident, RenewalRun, Reservation
from certificates.renewal import deposit
from certificates.tests import factories

pytestmark = pytest.mark.django_db

MINUTE = datetime.timedelta(minutes=1)


@pytest.fixture
def issued(organization):
    ca = factories.ca_account(organization, name="Troubled CA", price=Decimal("100"))
    deposit.top_up(ca_account=ca, amount=Decimal("1000"))
    cert = factories.certificate(organization, ca, common_name="www.example.test",
                                 sans=["www.example.test"], tags="shop")
    factories.make_current(cert, factories.new_version(cert, cert.common_name))
    return cert


def nothing_started():
    return (not Incident.objects.exists() and not RenewalRun.objects.exists()
            and not Reservation.objects.exists())


def test_the_page_refuses_a_past_deadline_naming_the_field(client, admin, issued):
    client.force_login(admin)
    reauthenticate(client, admin)
    past = (timezone.localtime() - MINUTE).strftime("%Y-%m-%dT%H:%M")
    form = {"name": "CA bug", "ca_account": issued.ca_account_id, "tag": "shop",
            "deadline": past, "revocation_reason": "4"}
    url = reverse("certificates:incident_create")
    for button in ("preview", "start"):
        page = client.post(url, {**form, button: "1"})
        assert page.status_code == 200
        assert page.context["form"].errors["deadline"] == ["The deadline must be in the future."]
        html = page.content.decode()
        assert "The deadline must be in the future." in html
        assert "incident-start" not in html  # no preview to start from
    assert nothing_started()


def test_the_api_refuses_a_past_deadline_naming_the_field(organization, admin, issued):
    api = client_for(make_token(admin)[1])
    body = {"organization": organization.pk, "name": "CA bug", "tag": "shop",
            "deadline": (timezone.now() - MINUTE).isoformat()}
    answer = api.post("/api/v1/incidents/", body, format="json")
    assert answer.status_code == 400, answer.content
    assert answer.json()["errors"] == [{"field": "deadline", "code": "deadline_past",
                                        "message": "The deadline must be in the future."}]
    assert nothing_started()
    body["deadline"] = (timezone.now() + MINUTE).isoformat()
    assert api.post("/api/v1/incidents/", body, format="json").status_code == 201


def test_the_service_refuses_a_past_deadline_before_writing_anything(organization, admin,
                                                                      issued):
    with pytest.raises(ValidationError) as refused:
        service.start(organization=organization, name="CA bug", chosen=Filter(tag="shop"),
                      deadline=timezone.now(), by=admin)
    assert refused.value.message_dict == {"deadline": ["The deadline must be in the future."]}
    assert nothing_started()
