"""Forgotten passwords are reset by e-mail (allauth's views), in the person's
page's language, with a link to the portal's public address."""

import re

import pytest
from django.core import mail
from django.urls import reverse

pytestmark = pytest.mark.django_db


def request_reset(client, email, language="ja"):
    return client.post(reverse("account_reset_password"), {"email": email},
                       HTTP_ACCEPT_LANGUAGE=language)


def test_a_reset_link_by_e_mail_sets_a_new_password(client, operator, settings):
    settings.PORTAL_BASE_URL = "https://portal.example.test"
    assert "パスワード" in client.get(reverse("account_reset_password"),
                                       HTTP_ACCEPT_LANGUAGE="ja").content.decode()
    response = request_reset(client, "operator@example.test")
    assert response.status_code == 302
    [message] = mail.outbox
    assert message.to == ["operator@example.test"]
    link = re.search(r"https://portal\.example\.test(/accounts/password/reset/key/\S+/)",
                     message.body)
    assert link, message.body
    assert "パスワード" in message.subject + message.body  # the person's language
    page = client.get(link.group(1), follow=True)
    assert page.status_code == 200
    response = client.post(page.redirect_chain[-1][0] if page.redirect_chain else link.group(1),
                           {"password1": "a-new-Secret-42", "password2": "a-new-Secret-42"})
    assert response.status_code == 302
    operator.refresh_from_db()
    assert operator.check_password("a-new-Secret-42")


def test_an_unknown_address_gets_the_same_answer_and_no_mail(client, operator):
    response = request_reset(client, "nobody@example.test")
    assert response.status_code == 302
    assert mail.outbox == []


def test_the_login_page_links_to_the_reset(client):
    html = client.get(reverse("login")).content.decode()
    assert reverse("account_reset_password") in html
