"""Enrolling a target host: pin its SSH host key, then test what a deployment needs.

Pinning takes two people's worth of care in two steps: the portal fetches the
key the host presents and shows its fingerprint; an administrator compares it
with the one on the host (``ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub``)
and confirms. Until then the host receives nothing.
"""

from __future__ import annotations

import logging
import posixpath
import re
from collections.abc import Callable
from dataclasses import dataclass

from django.core.exceptions import ValidationError
from django.utils import timezone
from django.utils.translation import gettext as _

from accounts.models import User
from certificates import validators
from certificates.models import TargetHost
from certificates.models.hosts import PATH_FIELDS
from certificates.seams import ssh

logger = logging.getLogger(__name__)

# Paths that name a folder themselves; the others name a file in a folder.
FOLDER_FIELDS = ("document_root", "backup_dir")


@dataclass(frozen=True)
class Check:
    name: str  # stable identifier, e.g. "folder:backup_dir"
    label: str  # for people
    ok: bool
    detail: str = ""


def fetch_and_pin_host_key(*, host_id: int, by: User | None) -> str:
    """Fetch the key ``host_id`` presents and store it, unconfirmed; its fingerprint.

    Fetching again after a legitimate key change replaces the pin and
    withdraws the confirmation: the new key must be confirmed in its turn. The
    same key fetched again changes nothing.
    """
    host = TargetHost.objects.get(pk=host_id)
    line = ssh.fetch_host_key(host.address, host.ssh_port)  # no transaction is open here
    fingerprint = validators.ssh_fingerprint_sha256(line)
    TargetHost.objects.filter(pk=host_id).exclude(host_key_fingerprint=fingerprint).update(
        host_key=line, host_key_fingerprint=fingerprint,
        host_key_confirmed_at=None, host_key_confirmed_by=None,
    )
    logger.info("host key of %s fetched by %s: %s (unconfirmed)", host, by, fingerprint)
    return fingerprint


# What ``ssh-keygen -lf`` prints: "256 SHA256:… root@host (ED25519)". The
# confirmation page tells people to run it, so its whole line is accepted.
_SHA256_IN_LINE = re.compile(r"(?:^|\s)SHA256:(\S+)")


def _normalise_fingerprint(value: str) -> str:
    value = value.strip()
    found = _SHA256_IN_LINE.search(value)
    if found:
        return f"SHA256:{found.group(1).rstrip('=')}"
    if len(value.split()) != 1:
        raise ValidationError(
            _("Paste the SHA256 fingerprint (SHA256:…) or the whole line "
              "ssh-keygen -lf printed for the host's key."),
            code="fingerprint_unreadable",
        )
    return f"SHA256:{value.rstrip('=')}"


def confirm_host_key(*, host_id: int, fingerprint: str, by: User | None) -> str:
    """Confirm the pinned key, if ``fingerprint`` is the one the administrator saw;
    the fingerprint confirmed.

    ``fingerprint`` may be the whole line ``ssh-keygen -lf`` printed. A
    guarded UPDATE: if the key was fetched again in the meantime, the
    administrator confirmed a fingerprint that is no longer stored, and
    nothing is confirmed.
    """
    fingerprint = _normalise_fingerprint(fingerprint)
    confirmed = TargetHost.objects.filter(
        pk=host_id, host_key_fingerprint=fingerprint,
    ).exclude(host_key="").update(
        host_key_confirmed_at=timezone.now(), host_key_confirmed_by=by,
    )
    if not confirmed:
        raise _mismatch(host_id, fingerprint)
    logger.info("host key %s of host %s confirmed by %s", fingerprint, host_id, by)
    return fingerprint


def _mismatch(host_id: int, given: str) -> ValidationError:
    stored = TargetHost.objects.values_list("host_key_fingerprint", flat=True).get(pk=host_id)
    if not stored:
        return ValidationError(_("No host key has been fetched for this host yet: fetch "
                                 "it first, then compare its fingerprint."),
                               code="no_host_key")
    # The key the portal was shown is not the host's: that is what a machine
    # in the middle looks like, so the advice is not to confirm.
    return ValidationError(
        _("The host's fingerprint %(given)s differs from the key the portal received "
          "when it connected (%(stored)s). Someone may be intercepting the connection "
          "between the portal and the host: do not confirm this key. Check that you ran "
          "ssh-keygen on this host for its %(type)s key; if the fingerprints still "
          "differ, find out why before fetching the key again.")
        % {"given": given, "stored": stored, "type": _key_type(host_id)},
        code="fingerprint_mismatch",
    )


def _key_type(host_id: int) -> str:
    line = TargetHost.objects.values_list("host_key", flat=True).get(pk=host_id)
    return line.split()[0] if line else "?"


def test_connection(*, host_id: int) -> list[Check]:
    """Reach the host, log in, check each folder and run both commands.

    Every check is reported on its own; if the login fails, that is the
    last check, since nothing else can be tried.
    """
    host = TargetHost.objects.get(pk=host_id)
    try:
        with ssh.connect(host, fresh=True) as session:  # a new login, not a kept one
            checks = [Check("connect", _("Connection and login"), True,
                            _("Host key %(fingerprint)s matches the pinned key.")
                            % {"fingerprint": host.host_key_fingerprint})]
            for field, label in PATH_FIELDS.items():
                if getattr(host, field):
                    # A folder field is its own folder: "Backup folder", not "Folder of ...".
                    title = str(label) if field in FOLDER_FIELDS else _("Folder of %(field)s") % {
                        "field": label}
                    checks.append(_check(f"folder:{field}", title, _check_folder, session,
                                         host, field))
            checks.append(_check("config_test", _("Config test command"), _check_command,
                                 session, host.config_test_command))
            checks.append(_check("reload", _("Reload command"), _check_command, session,
                                 host.reload_command))
    except ssh.SSHError as exc:
        return [Check("connect", _("Connection and login"), False, str(exc))]
    return checks


# A service, not a test, whatever pytest thinks; a function declares no such
# attribute, so mypy cannot know it.
test_connection.__test__ = False  # type: ignore[attr-defined]


def _check(name: str, label: str, probe: Callable[..., tuple[bool, str]],
           *args: object) -> Check:
    """Run one probe, which returns (ok, detail); a failure of its own is a failed check."""
    try:
        ok, detail = probe(*args)
    except ssh.SSHError as exc:
        ok, detail = False, str(exc)
    return Check(name, label, ok, detail)


def _check_folder(session: ssh.Session, host: TargetHost, field: str) -> tuple[bool, str]:
    path = getattr(host, field)
    folder = path if field in FOLDER_FIELDS else posixpath.dirname(path)
    if not session.is_dir(folder):
        return False, _("%(folder)s does not exist.") % {"folder": folder}
    if field == "backup_dir":
        session.check_private_folder(folder)  # what a deployment would refuse
    # Writing is the only honest test of writability (ACLs, read-only mounts,
    # SELinux all escape the mode bits); the probe file is removed at once.
    probe = session.temporary_name(posixpath.join(folder, "write-test"))
    try:
        session.write_file(probe, b"", mode=0o600)
    finally:
        session.remove(probe)
    return True, _("%(folder)s exists and is writable.") % {"folder": folder}


def _check_command(session: ssh.Session, command: str) -> tuple[bool, str]:
    if not command:
        return False, _("No command configured.")
    result = session.run(command)
    detail = _("“%(command)s” exited with status %(status)s.") % {
        "command": command, "status": result.exit_status}
    if result.output:
        detail += "\n" + result.output
    return result.ok, detail
