"""People join an organisation by invitation: a mailed link, accepted by the
person of that address, new or existing; nobody learns who has an account."""

import datetime
import hashlib
import re
from email import message_from_bytes, policy

import pytest
from django.core import mail
from django.urls import reverse
from django.utils import timezone

from accounts.models import Invitation, Membership, Role
from certificates.models import AuditEvent
from testbed.ports import free_port

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def english(client, settings):
    client.defaults["HTTP_ACCEPT_LANGUAGE"] = "en"
    settings.PORTAL_BASE_URL = "https://portal.example.test/"


NEUTRAL = "If the address can be invited, an e-mail with a link was sent to it."


def invite(client, email, role="operator", language="en"):
    response = client.post(reverse("certificates:member_invite"),
                           {"email": email, "role": role, "language": language}, follow=True)
    assert response.status_code == 200
    return response


def link_in(message):
    found = re.search(r"https://portal\.example\.test/invitations/([^/\s]+)/", message.body)
    assert found, message.body
    return found.group(0), found.group(1)


def test_an_invitation_is_accepted_by_a_new_person_who_creates_an_account(
        client, owner, organization, django_user_model):
    client.force_login(owner)
    invite(client, "newcomer@example.test", role="operator")
    assert not django_user_model.objects.filter(email="newcomer@example.test").exists()
    [message] = mail.outbox
    assert message.to == ["newcomer@example.test"]
    url, token = link_in(message)

    client.logout()
    page = client.get(url)
    assert page.status_code == 200 and b'id="create-account"' in page.content
    response = client.post(url, {"username": "newcomer", "password1": "Kiri-no-mori-77",
                                 "password2": "Kiri-no-mori-77"})
    assert response.status_code == 302 and response["Location"].startswith(reverse("login"))

    person = django_user_model.objects.get(username="newcomer")
    assert person.email == "newcomer@example.test"
    assert Membership.objects.get(user=person, organization=organization).role == Role.OPERATOR
    assert client.login(username="newcomer", password="Kiri-no-mori-77")
    assert client.get(reverse("certificates:dashboard")).status_code == 200
    invitation = Invitation.objects.get()
    assert invitation.accepted_by == person and invitation.accepted_at is not None
    assert set(AuditEvent.objects.values_list("action", flat=True)) == {
        AuditEvent.Action.INVITATION_SENT, AuditEvent.Action.INVITATION_ACCEPTED}


def test_an_invitation_is_accepted_by_an_existing_person_signed_in_with_its_address(
        client, owner, outsider, organization):
    client.force_login(owner)
    invite(client, "OUTSIDER@example.test", role="viewer")
    url, _token = link_in(mail.outbox[0])
    assert not Membership.objects.filter(user=outsider, organization=organization).exists()

    client.force_login(outsider)
    assert b'id="accept-invitation"' in client.get(url).content
    response = client.post(url)
    assert response.status_code == 302 and response["Location"] == reverse(
        "certificates:dashboard")
    assert Membership.objects.get(user=outsider, organization=organization).role == Role.VIEWER
    # The organisation joined is the one shown next.
    assert organization.name in client.get(reverse("certificates:dashboard")).content.decode()


def test_the_answer_is_the_same_whether_or_not_the_address_has_an_account(
        client, owner, outsider, organization):
    client.force_login(owner)
    known = invite(client, "outsider@example.test")
    unknown = invite(client, "nobody-here@example.test")
    said = [[str(m) for m in response.context["messages"]] for response in (known, unknown)]
    assert said == [[NEUTRAL], [NEUTRAL]]
    members_page = client.get(reverse("certificates:members")).content.decode()
    # Nobody of another organisation is added, nor named, before accepting.
    assert "outsider" not in members_page.replace("outsider@example.test", "")
    assert not Membership.objects.filter(user=outsider, organization=organization).exists()
    assert len(mail.outbox) == 2


def test_only_the_hash_of_the_token_is_stored(client, owner):
    client.force_login(owner)
    invite(client, "newcomer@example.test")
    _url, token = link_in(mail.outbox[0])
    invitation = Invitation.objects.get()
    assert invitation.token_hash == hashlib.sha256(token.encode()).hexdigest()
    assert token not in str(Invitation.objects.values().get())


def test_a_link_opened_by_a_person_of_another_address_is_refused(
        client, owner, operator, organization):
    client.force_login(owner)
    invite(client, "someone-else@example.test", role="admin")
    url, _token = link_in(mail.outbox[0])
    client.force_login(operator)
    assert client.get(url).status_code == 403
    assert client.post(url).status_code == 403
    assert Membership.objects.get(user=operator).role == Role.OPERATOR
    assert Invitation.objects.get().accepted_at is None


def test_the_mail_goes_through_smtp_in_the_language_chosen_for_it(client, owner, smtp_inbox):
    client.force_login(owner)
    invite(client, "newcomer@example.test", language="ja")
    [envelope] = smtp_inbox.envelopes
    assert envelope.rcpt_tos == ["newcomer@example.test"]
    message = message_from_bytes(envelope.content, policy=policy.default)
    body = message.get_body(("plain",)).get_content()
    assert "招待" in message["Subject"] and "招待" in body
    assert "https://portal.example.test/invitations/" in body
    assert Invitation.objects.get().sent_at is not None


def test_an_invitation_that_cannot_be_mailed_says_so_to_its_administrators(
        client, owner, settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", free_port()  # nobody listens
    client.force_login(owner)
    response = invite(client, "newcomer@example.test")
    assert [str(m) for m in response.context["messages"]] == [NEUTRAL]
    invitation = Invitation.objects.get()
    assert invitation.sent_at is None and "ConnectionRefusedError" in invitation.mail_error
    assert "mail not sent" in client.get(reverse("certificates:members")).content.decode()


def test_a_member_is_not_invited_again_and_the_answer_is_the_same(client, owner, operator):
    client.force_login(owner)
    response = invite(client, "operator@example.test")
    assert [str(m) for m in response.context["messages"]] == [NEUTRAL]
    assert mail.outbox == [] and not Invitation.objects.exists()


@pytest.mark.parametrize("ending, status, says", [
    ("expired", 410, "expired"),
    ("revoked", 410, "withdrawn"),
    ("used", 410, "has been used"),
])
def test_an_ended_link_gets_a_clear_page(client, owner, outsider, django_user_model,
                                          ending, status, says):
    client.force_login(owner)
    invite(client, "outsider@example.test")
    url, _token = link_in(mail.outbox[0])
    invitation = Invitation.objects.get()
    if ending == "expired":
        Invitation.objects.update(expires_at=timezone.now() - datetime.timedelta(seconds=1))
    elif ending == "revoked":
        client.post(reverse("certificates:invitation_revoke", args=[invitation.pk]))
    else:
        client.force_login(outsider)
        client.post(url)
    client.force_login(outsider)
    for response in (client.get(url), client.post(url)):
        assert response.status_code == status
        assert says in response.content.decode()
    assert Membership.objects.filter(user=outsider).count() == (2 if ending == "used" else 1)


def test_an_unknown_link_is_not_found(client):
    response = client.get(reverse("certificates:invitation_accept", args=["no-such-token"]))
    assert response.status_code == 404 and b"not valid" in response.content


def test_a_newer_invitation_of_the_same_address_replaces_the_older(client, owner):
    client.force_login(owner)
    invite(client, "newcomer@example.test")
    invite(client, "newcomer@example.test")
    first, second = (link_in(message)[0] for message in mail.outbox)
    assert client.get(first).status_code == 410
    client.logout()
    assert client.get(second).status_code == 200


def test_only_administrators_invite_and_revoke(client, owner, operator):
    client.force_login(owner)
    invite(client, "newcomer@example.test")
    invitation = Invitation.objects.get()
    client.force_login(operator)
    assert client.post(reverse("certificates:invitation_revoke",
                               args=[invitation.pk])).status_code == 403
    assert b"newcomer@example.test" not in client.get(reverse("certificates:members")).content
    invitation.refresh_from_db()
    assert invitation.revoked_at is None


def test_an_administrator_does_not_revoke_an_owners_invitation(client, owner, admin):
    client.force_login(owner)
    invite(client, "next-owner@example.test", role="owner")
    invitation = Invitation.objects.get()
    client.force_login(admin)
    assert client.post(reverse("certificates:invitation_revoke",
                               args=[invitation.pk])).status_code == 403
    invitation.refresh_from_db()
    assert invitation.revoked_at is None


def test_an_outsider_cannot_revoke_another_organisations_invitation(client, owner, outsider):
    client.force_login(owner)
    invite(client, "newcomer@example.test")
    invitation = Invitation.objects.get()
    client.force_login(outsider)
    assert client.post(reverse("certificates:invitation_revoke",
                               args=[invitation.pk])).status_code == 404
