"""Enrolling hosts: the host key is pinned only after a person confirmed it."""

import pytest
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.core.management.base import CommandError

from certificates.hosts import enrolment
from certificates.models import AuditEvent, TargetHost
from certificates.seams import ssh
from certificates.tests.installing import install_now

from .factories import portal_host, version_for

pytestmark = pytest.mark.django_db


@pytest.fixture
def new_host(organization, target_host):
    """A host just added: no key pinned yet."""
    return portal_host(organization, target_host, confirmed=False)


@pytest.fixture
def host(organization, target_host):
    return portal_host(organization, target_host)


@pytest.fixture
def version(organization, target_host):
    return version_for(organization, target_host.sni_name)


def checks_by_name(checks) -> dict:
    return {check.name: check for check in checks}


def test_adding_a_host_fetches_its_key_for_an_administrator_to_confirm(
        new_host, target_host, owner):
    fingerprint = enrolment.fetch_and_pin_host_key(host_id=new_host.pk, by=owner)

    assert fingerprint == target_host.host_key_fingerprint
    new_host.refresh_from_db()
    assert new_host.host_key.split()[:2] == target_host.host_public_key.split()[:2]
    assert new_host.host_key_fingerprint == fingerprint
    assert not new_host.host_key_confirmed


def test_only_a_confirmed_host_receives_files(version, new_host, target_host, owner):
    fingerprint = enrolment.fetch_and_pin_host_key(host_id=new_host.pk, by=owner)
    before = target_host.fullchain_path.read_bytes()

    refused = install_now(version, TargetHost.objects.get(pk=new_host.pk))
    assert not refused.ok and not refused.transient
    assert target_host.fullchain_path.read_bytes() == before

    enrolment.confirm_host_key(host_id=new_host.pk, fingerprint=fingerprint, by=owner)
    confirmed = TargetHost.objects.get(pk=new_host.pk)
    assert confirmed.host_key_confirmed and confirmed.host_key_confirmed_by == owner
    assert install_now(version, confirmed).ok


def test_a_fingerprint_other_than_the_stored_one_confirms_nothing(new_host, owner):
    stored = enrolment.fetch_and_pin_host_key(host_id=new_host.pk, by=owner)
    seen = "SHA256:" + "A" * 43

    with pytest.raises(ValidationError) as caught:
        enrolment.confirm_host_key(host_id=new_host.pk, fingerprint=seen, by=owner)

    assert stored in caught.value.messages[0] and seen in caught.value.messages[0]
    assert not TargetHost.objects.get(pk=new_host.pk).host_key_confirmed


def test_a_fingerprint_without_its_prefix_is_accepted(new_host, owner):
    stored = enrolment.fetch_and_pin_host_key(host_id=new_host.pk, by=owner)

    enrolment.confirm_host_key(host_id=new_host.pk, fingerprint=stored.removeprefix("SHA256:"),
                               by=owner)

    assert TargetHost.objects.get(pk=new_host.pk).host_key_confirmed


def test_fetching_a_changed_key_withdraws_the_confirmation(host, target_host, owner):
    new = target_host.replace_host_key()

    assert enrolment.fetch_and_pin_host_key(host_id=host.pk, by=owner) == new

    host.refresh_from_db()
    assert host.host_key_fingerprint == new and not host.host_key_confirmed


def test_fetching_the_same_key_again_keeps_the_confirmation(host, target_host, owner):
    enrolment.fetch_and_pin_host_key(host_id=host.pk, by=owner)

    host.refresh_from_db()
    assert host.host_key_confirmed
    assert host.host_key_fingerprint == target_host.host_key_fingerprint


def test_fetching_from_a_host_whose_sshd_is_down_is_a_transient_error(new_host, target_host,
                                                                      owner):
    target_host.stop_sshd()
    with pytest.raises(ssh.Unreachable) as caught:
        enrolment.fetch_and_pin_host_key(host_id=new_host.pk, by=owner)
    assert caught.value.transient


# -- test connection --------------------------------------------------------------


def test_test_connection_reports_every_check_and_all_pass(host):
    checks = enrolment.test_connection(host_id=host.pk)

    assert [check.name for check in checks] == [
        "connect", "folder:private_key_path", "folder:certificate_path",
        "folder:ca_bundle_path", "folder:fullchain_path", "folder:document_root",
        "folder:backup_dir", "config_test", "reload",
    ]
    assert all(check.ok for check in checks), [c for c in checks if not c.ok]
    assert "syntax is ok" in checks_by_name(checks)["config_test"].detail  # nginx -t said so
    # A folder field is named once, not "Folder of Backup folder".
    titles = {check.name: str(check.label) for check in checks}
    assert "Backup folder" in titles["folder:backup_dir"]
    assert "Folder" not in titles["folder:backup_dir"]


def test_test_connection_reports_a_missing_folder_and_a_failing_command_on_their_own(
        host, target_host):
    host.backup_dir = str(target_host.backup_dir / "not-there")
    host.reload_command = "echo no such service >&2; exit 5"
    host.save()

    checks = checks_by_name(enrolment.test_connection(host_id=host.pk))

    assert not checks["folder:backup_dir"].ok
    assert "not-there" in checks["folder:backup_dir"].detail
    assert not checks["reload"].ok and "no such service" in checks["reload"].detail
    assert "5" in checks["reload"].detail
    others = [c for name, c in checks.items() if name not in ("folder:backup_dir", "reload")]
    assert all(check.ok for check in others)
    assert not [p for p in target_host.ssl_dir.iterdir() if ".portal-" in p.name]


def test_test_connection_to_a_host_with_a_changed_key_fails_at_the_first_check(
        host, target_host):
    presented = target_host.replace_host_key()

    checks = enrolment.test_connection(host_id=host.pk)

    assert [(c.name, c.ok) for c in checks] == [("connect", False)]
    assert presented in checks[0].detail


# -- manage.py enrol_host -----------------------------------------------------------


def test_enrol_host_pins_the_key_a_script_has_checked(new_host, target_host, capsys):
    call_command("enrol_host", new_host.name, "--yes-i-checked",
                 target_host.host_key_fingerprint)

    assert target_host.host_key_fingerprint in capsys.readouterr().out
    assert TargetHost.objects.get(pk=new_host.pk).host_key_confirmed


def test_a_key_confirmed_by_enrol_host_is_in_the_audit_log(new_host, target_host):
    call_command("enrol_host", new_host.name, "--yes-i-checked",
                 target_host.host_key_fingerprint)

    event = AuditEvent.objects.get()
    assert (event.action, event.organization, event.subject, event.user) == (
        AuditEvent.Action.HOST_KEY_CONFIRMED, new_host.organization, new_host.name, None)
    assert event.params == {"fingerprint": target_host.host_key_fingerprint, "via": "command"}


def test_enrol_host_refuses_a_fingerprint_that_was_not_presented(new_host):
    with pytest.raises(CommandError, match="SHA256:wrong"):
        call_command("enrol_host", str(new_host.pk), "--yes-i-checked", "SHA256:wrong")
    assert not TargetHost.objects.get(pk=new_host.pk).host_key_confirmed


@pytest.mark.parametrize(("answer", "confirmed"), [("yes", True), ("no", False)])
def test_enrol_host_asks_a_person_to_confirm(new_host, monkeypatch, answer, confirmed):
    monkeypatch.setattr("builtins.input", lambda prompt: answer)
    if confirmed:
        call_command("enrol_host", new_host.name)
    else:
        with pytest.raises(CommandError):
            call_command("enrol_host", new_host.name)
    assert TargetHost.objects.get(pk=new_host.pk).host_key_confirmed is confirmed


def test_enrol_host_can_test_the_connection_after_pinning(new_host, target_host, capsys):
    call_command("enrol_host", new_host.name, "--yes-i-checked",
                 target_host.host_key_fingerprint, "--test")

    # Any failed check would have raised CommandError.
    assert "syntax is ok" in capsys.readouterr().out  # nginx -t ran over SSH
