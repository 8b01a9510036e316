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


def test_a_lease_too_short_to_be_renewed_in_time_stops_the_check(settings):
    settings.RENEWAL_LEASE_SECONDS = 10
    assert check_ids() == {"portal.E001"}
    with pytest.raises(SystemCheckError, match="RENEWAL_LEASE_SECONDS"):
        call_command("check")


def test_a_visibility_timeout_within_a_tasks_time_limit_stops_the_check(settings):
    settings.CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 700}
    assert check_ids() == {"portal.E002"}


def test_a_visibility_timeout_within_a_queued_runs_wait_stops_the_check(settings):
    settings.CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 3600}
    settings.RENEWAL_QUEUE_SECONDS = 4000
    assert check_ids() == {"portal.E002"}


def test_a_host_lease_past_the_deployment_time_limit_stops_the_check(settings):
    settings.SSH_COMMAND_TIMEOUT = 600
    assert check_ids() == {"portal.E003"}


def test_a_retry_interval_under_a_second_stops_the_check(settings):
    settings.RENEWAL_RETRY_MIN_SECONDS = 0
    assert check_ids() == {"portal.E004"}
