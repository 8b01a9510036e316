"""The management commands print times in the organisation's time zone, as its
pages show them: an imported certificate's expiry, and the instants in a run
step's detail (the renew and deploy commands print each step)."""

import datetime
import io
import zoneinfo

import pytest
from django.core.management import call_command
from django.utils import timezone

from certificates.management.local_times import organization_zone, step_detail
from certificates.models import InventoryCertificate

from . import pki

pytestmark = pytest.mark.django_db


def a_zone_on_another_day(instant: datetime.datetime) -> zoneinfo.ZoneInfo:
    """A time zone in which `instant` falls on another date than in UTC."""
    for name in ("Pacific/Kiritimati", "Pacific/Pago_Pago"):  # UTC+14, UTC-11
        zone = zoneinfo.ZoneInfo(name)
        if timezone.localtime(instant, zone).date() != instant.date():
            return zone
    raise AssertionError("every instant is on another day in one of them")


def test_import_prints_the_expiry_date_in_the_organisations_time_zone(organization, tmp_path):
    key = pki.private_key()
    leaf = pki.issue("shop.example.test", key.public_key(), key, names=["shop.example.test"])
    expires = leaf.not_valid_after_utc
    zone = a_zone_on_another_day(expires)
    organization.time_zone = zone.key
    organization.save()
    (tmp_path / "shop.pem").write_text(pki.cert_pem(leaf))
    out = io.StringIO()

    call_command("import_certificates", str(tmp_path / "shop.pem"), "--organization",
                 organization.slug, stdout=out)

    assert InventoryCertificate.objects.filter(common_name="shop.example.test").exists()
    local_day = timezone.localtime(expires, zone).date()
    assert f"expires {local_day:%Y-%m-%d} {zone.key}" in out.getvalue()
    assert f"expires {expires:%Y-%m-%d}" not in out.getvalue()


def test_a_steps_instants_are_printed_in_the_organisations_time_zone(organization):
    organization.time_zone = "Asia/Tokyo"

    shown = step_detail("renews from 2026-11-30T15:00:00+00:00 (ARI)",
                        organization_zone(organization))

    assert shown == "renews from 1 Dec 2026, 00:00 (ARI)"


def test_an_unknown_stored_zone_falls_back_to_the_portals(organization, settings):
    organization.time_zone = "Mars/Olympus"

    assert organization_zone(organization).key == settings.TIME_ZONE
