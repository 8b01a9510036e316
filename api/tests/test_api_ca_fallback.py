"""The API on a second CA: which CA account a certificate renews through now and
why, and the one action that moves every certificate away from a CA."""

import pytest

from certificates.models import AuditEvent, Certificate
from certificates.tests.factories import ca_account, certificate


@pytest.mark.django_db
def test_the_api_says_which_ca_a_certificate_uses_and_moves_certificates_away(
        organization, admin, operator, as_user):
    standby = ca_account(organization, name="Standby CA")
    main = ca_account(organization, name="Main CA", fallback_ca_account=standby)
    cert = certificate(organization, main)
    api = as_user(admin)

    # Administrators only: an operator's request moves nothing.
    refused = as_user(operator).post(f"/api/v1/ca-accounts/{main.pk}/move-away/")
    assert refused.status_code == 403
    assert Certificate.objects.get(pk=cert.pk).ca_account_id == main.pk

    moved = api.post(f"/api/v1/ca-accounts/{main.pk}/move-away/")
    assert moved.status_code == 200, moved.content
    assert moved.json() == {"moved": [cert.pk], "stranded": []}
    event = AuditEvent.objects.get(action=AuditEvent.Action.CA_MOVED_AWAY)
    assert (event.user, event.subject, event.params) == (admin, "Main CA",
                                                          {"moved": 1, "stranded": 0})
    body = api.get(f"/api/v1/certificates/{cert.pk}/").json()
    assert (body["ca_account"], body["moved_from_ca_account"], body["ca_switch_reason"]) == (
        standby.pk, main.pk, "moved_away")
    assert api.get(f"/api/v1/ca-accounts/{main.pk}/").json()["abandoned_at"] is not None
