"""Settings that must agree with one another stop `manage.py check` when they
do not (fujissl_portal/checks.py)."""

import pytest
from django.core.management import call_command
from django.core.management.base import SystemCheckError


def check_ids():
    from django.core.checks import run_checks

    return {message.id for message in run_checks(tags=["portal"])}


def test_the_default_timings_agree():
    assert check_ids() == set()
    call_command("check")


def test_a_lease_shorter_than_a_tasks_time_limit_stops_the_check(settings):
    settings.RENEWAL_LEASE_SECONDS = 300
    assert "portal.E001" in check_ids()
    with pytest.raises(SystemCheckError, match="RENEWAL_LEASE_SECONDS"):
        call_command("check")


def test_a_visibility_timeout_within_the_lease_stops_the_check(settings):
    settings.CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 600}
    assert check_ids() == {"portal.E002"}


def test_a_host_lease_past_the_deployment_time_limit_stops_the_check(settings):
    settings.SSH_COMMAND_TIMEOUT = 600
    assert check_ids() == {"portal.E003"}
