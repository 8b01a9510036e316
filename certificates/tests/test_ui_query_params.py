"""Query-string values the pages do not expect (hand-made links, truncated ones,
a scanner's) never give a server error: they are ignored, or the page says why."""

import pytest
from django.urls import reverse
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fujissl_portal.params import strict_int

pytestmark = pytest.mark.django_db


@pytest.fixture
def signed_in(client, owner):
    client.defaults["HTTP_ACCEPT_LANGUAGE"] = "en"
    client.force_login(owner)
    return client


def test_a_search_of_fifty_thousand_characters_is_ignored_with_a_message(signed_in, world):
    response = signed_in.get(reverse("certificates:certificates"), {"q": "a" * 50_001})
    assert response.status_code == 200
    assert "The filter “q” was ignored: it allows at most 200 characters" in \
        response.content.decode()
    assert world["certificate"].common_name in response.content.decode()


def test_a_host_search_holding_a_nul_is_ignored(signed_in, world):
    response = signed_in.get(reverse("certificates:hosts"), {"q": "web\x001"})
    assert response.status_code == 200
    assert world["host"].name in response.content.decode()


@pytest.mark.parametrize("value", ["²", "١٢", "1e3", "-1", "0", "9" * 30, " 1", "1.0"])
def test_an_id_is_ascii_digits_within_a_database_integer(value):
    assert strict_int(value) is None


def test_deploy_ignores_a_host_id_that_is_not_ascii_digits(signed_in, world):
    response = signed_in.post(reverse("certificates:deploy", args=[world["certificate"].pk]),
                              {"host": ["²", "9" * 40]})
    assert response.status_code == 302


def test_switching_to_an_organisation_id_that_is_not_a_number_is_a_404(signed_in, world):
    response = signed_in.post(reverse("certificates:switch_organization"),
                              {"organization": "²"})
    assert response.status_code == 404


@pytest.mark.parametrize("params", [
    {"expiring": "99999999999"}, {"ca": "9" * 25}, {"host": "9" * 25},
    {"hostname": "x" * 60_000},
])
def test_out_of_range_certificate_filters_show_the_list(signed_in, world, params):
    assert signed_in.get(reverse("certificates:certificates"), params).status_code == 200


# Every GET parameter each page reads, and the pages themselves.
PAGES = {
    "certificates:dashboard": ["range"],
    "certificates:certificates": ["q", "state", "ca", "host", "hostname", "expiring", "sort",
                                  "page"],
    "certificates:hosts": ["q", "page"],
    "certificates:ca_accounts": ["page"],
    "certificates:orders": ["status", "page"],
    "certificates:runs": ["status", "page"],
    "certificates:members": ["page"],
}
DETAIL_PAGES = ["certificates:certificate", "certificates:host", "certificates:ca_account",
                "certificates:order", "certificates:run", "certificates:run_steps"]
DETAIL_OBJECT = {"certificates:certificate": "certificate", "certificates:host": "host",
                 "certificates:ca_account": "ca_account", "certificates:order": "order",
                 "certificates:run": "run", "certificates:run_steps": "run"}

odd_text = st.one_of(
    st.sampled_from(["²", "١٢", "-1", "0", "9" * 25, "1e309", "%", "_", "\\", "\x00",
                     "ＷＷＷ．msen。test", "a" * 60_000, "\ud7ff", "NaN", " "]),
    st.integers().map(str),
    st.text(max_size=300),
)


FUZZ = settings(max_examples=15, deadline=None, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow])


@pytest.mark.parametrize("page", sorted(PAGES))
def test_no_odd_query_string_gives_a_server_error_on_a_list_page(signed_in, world, page):
    @FUZZ
    @given(values=st.dictionaries(st.sampled_from(PAGES[page] + ["x"]), odd_text,
                                  min_size=1, max_size=4))
    def fetch(values):
        response = signed_in.get(reverse(page), values)
        assert response.status_code < 500, (page, values)

    fetch()


@pytest.mark.parametrize("page", DETAIL_PAGES)
def test_no_odd_query_string_gives_a_server_error_on_a_detail_page(signed_in, world, page):
    url = reverse(page, args=[world[DETAIL_OBJECT[page]].pk])

    @FUZZ
    @given(values=st.dictionaries(st.sampled_from(["page", "q", "status", "x"]), odd_text,
                                  min_size=1, max_size=3))
    def fetch(values):
        assert signed_in.get(url, values).status_code < 500, (page, values)

    fetch()
