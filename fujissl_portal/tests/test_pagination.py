"""Pages found by their keys first hold exactly what a plain slice would."""

import datetime
import re

import pytest
from django.core.paginator import Paginator
from django.db import connection
from django.db.models import F
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from certificates import states
from certificates.models import Certificate
from certificates.tests.factories import ca_account
from fujissl_portal.pagination import KeysFirstPaginator

pytestmark = pytest.mark.django_db


@pytest.fixture
def listed(organization):
    ca = ca_account(organization)
    now = timezone.now()
    Certificate.objects.bulk_create([
        Certificate(organization=organization, ca_account=ca, common_name=f"c{i:03}.example.test",
                    sans=[f"c{i:03}.example.test"], failure_count=i % 7 == 0,
                    # Some share an expiry, some have none: ties and NULLs in the order.
                    expires_at=None if i % 11 == 0 else now + datetime.timedelta(days=i % 40))
        for i in range(137)])
    return (states.with_state(Certificate.objects.filter(organization=organization), now)
            .select_related("ca_account"))


@pytest.mark.parametrize("order", [
    (F("expires_at").asc(nulls_last=True), "common_name"),
    (F("expires_at").desc(nulls_last=True), "common_name"),
    ("-common_name",),
])
@pytest.mark.parametrize("per_page,orphans", [(50, 0), (25, 5), (10, 3)])
def test_every_page_holds_the_rows_of_a_plain_slice_in_the_same_order(
    listed, order, per_page, orphans
):
    queryset = listed.order_by(*order)
    plain = Paginator(queryset, per_page, orphans=orphans)
    keys_first = KeysFirstPaginator(queryset, per_page, orphans=orphans)
    assert keys_first.num_pages == plain.num_pages > 1
    for number in plain.page_range:
        expected = [(c.pk, c.state, c.ca_account.name) for c in plain.page(number)]
        got = [(c.pk, c.state, c.ca_account.name) for c in keys_first.page(number)]
        assert got == expected, number


def test_the_offset_is_walked_over_keys_alone_and_the_page_costs_two_queries(listed):
    paginator = KeysFirstPaginator(listed.order_by("common_name"), 50)
    paginator.count  # noqa: B018 (the count is its own query, as for any paginator)
    with CaptureQueriesContext(connection) as queries:
        page = paginator.page(3)
        rows = [(c.state, c.ca_account.name) for c in page]
    assert len(rows) == 37 and len(queries) == 2
    keys_sql = queries[0]["sql"]
    assert re.match(r'SELECT "certificates_certificate"\."id"( AS "pk")? FROM ', keys_sql), keys_sql
    assert "CASE" not in keys_sql and "certificates_caaccount" not in keys_sql


def test_an_empty_list_has_one_empty_page(organization):
    page = KeysFirstPaginator(Certificate.objects.filter(organization=organization)
                              .order_by("pk"), 50).get_page(None)
    assert list(page) == [] and page.number == 1
