"""With DEBUG off, a missing page and a server error are the portal's own pages,
in its layout, not Django's plain ones."""

import pytest
from django.urls import path

from fujissl_portal.urls import urlpatterns as portal_urlpatterns

pytestmark = pytest.mark.django_db


def boom(request):
    raise RuntimeError("a bug")


# The portal's own routes, which the pages link to, and one that fails.
urlpatterns = [path("boom/", boom), *portal_urlpatterns]


def test_a_missing_page_is_the_portals_not_found_page(client, settings, owner):
    settings.DEBUG = False
    client.force_login(owner)

    response = client.get("/no-such-page/", HTTP_ACCEPT_LANGUAGE="en")

    assert response.status_code == 404
    html = response.content.decode()
    assert 'id="not-found"' in html and "css/portal.css" in html
    assert "Using the URLconf" not in html  # the debug page's


@pytest.mark.urls(__name__)
def test_a_server_error_is_the_portals_error_page(client, settings):
    settings.DEBUG = False
    client.raise_request_exception = False

    response = client.get("/boom/", HTTP_ACCEPT_LANGUAGE="en")

    assert response.status_code == 500
    html = response.content.decode()
    assert 'id="server-error"' in html and "css/portal.css" in html
    assert "Something went wrong" in html and "a bug" not in html


def test_the_not_found_page_speaks_japanese_to_a_japanese_reader(client, settings):
    settings.DEBUG = False

    response = client.get("/no-such-page/", HTTP_ACCEPT_LANGUAGE="ja")

    html = response.content.decode()
    assert response.status_code == 404 and 'lang="ja"' in html
    assert "見つかりません" in html and "Not found" not in html


@pytest.mark.urls(__name__)
def test_the_error_page_speaks_japanese_to_a_japanese_reader(client, settings):
    settings.DEBUG = False
    client.raise_request_exception = False

    response = client.get("/boom/", HTTP_ACCEPT_LANGUAGE="ja")

    html = response.content.decode()
    assert response.status_code == 500 and 'id="server-error"' in html
    assert "問題が発生しました" in html and "Something went wrong" not in html
