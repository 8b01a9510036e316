"""Backing up the live files before an installation replaces them, putting
them back when it fails, and keeping only the newest backups (install.py
says in which order).

The backup of a certificate is a folder of its own in its section's
``backup_dir``, mode 0700 since it holds the old private key. Putting the
files back is itself checked: a rollback that leaves the server serving
neither the new certificate nor the previous one is reported as failed."""

from __future__ import annotations

import os
import re
import stat
from datetime import datetime, timezone

from . import certs, tlscheck
from .config import Config
from .livefiles import sync_folder, write_new
from .steps import (
    DONE,
    FAILED,
    ROLLBACK,
    ROLLED_BACK,
    STARTED,
    Item,
    Original,
    StepFailed,
    run_command,
    words,
)

BACKUP_TIME = "%Y%m%dT%H%M%S.%fZ"


def backup(item: Item) -> str:
    """Copy the live files ``item`` will replace into a new backup folder and
    note the leaf they held; the step's words."""
    section = item.section
    assert section is not None
    _check_backup_dir(section.backup_dir)
    stamp = datetime.now(timezone.utc).strftime(BACKUP_TIME)
    folder = os.path.join(section.backup_dir, f"{section.label}-{stamp}")
    os.mkdir(folder, 0o700)  # the backup holds the old private key
    item.backup_folder = folder
    for role in item.files:
        path = section.paths[role]
        item.originals.append(_save_original(path, os.path.join(
            folder, f"{role}-{os.path.basename(path)}")))
    for role in ("certificate", "fullchain"):
        original = next((o for o in item.originals
                         if o.path == section.paths.get(role) and o.backup), None)
        if original and not item.previous:
            item.previous = certs.file_fingerprint(original.backup)
    kept = sum(1 for o in item.originals if o.backup)
    return f"{kept} file{'s' if kept != 1 else ''} saved in {folder}"


def undo(items: list[Item], config: Config, *, reload: bool) -> bool:
    """Put the old files of ``items`` back (and reload once) where anything
    was installed; False if that did not go as planned for some item."""
    for item in items:
        if not item.installed:
            item.outcome = FAILED  # nothing of it reached the live files
    installed = [item for item in items if item.installed]
    if not installed:
        return True
    for item in installed:
        item.step(ROLLBACK, STARTED)
    missing = {item: _restore_files(item) for item in installed}
    restored = [item for item in installed if not missing[item]]
    for item in installed:
        if missing[item]:
            _rollback_failed(item, "; ".join(missing[item]) + " could not be put "
                             f"back (the previous files are in {item.backup_folder})")
    reason = ""
    if reload and restored:
        if len(restored) != len(installed):
            reason = ("they were not reloaded, since the files of another certificate "
                      "could not all be put back")
        else:
            reason = _reload_restored(restored, config)
    for item in restored:
        _confirm_rollback(item, reason, config)
    return not reason and len(restored) == len(installed)


def _restore_files(item: Item) -> list[str]:
    missing = []
    for original in item.originals:
        try:
            _restore(original)
        except OSError as exc:
            missing.append(f"{original.path} ({words(exc)})")
    item.installed = bool(missing)
    return missing


def _reload_restored(items: list[Item], config: Config) -> str:
    commands = []
    for item in items:
        command = item.section.reload if item.section else ""
        if command and command not in commands:
            commands.append(command)
    for command in commands:
        ok, output = run_command(command, config.command_timeout)
        if not ok:
            return f"the reload after them ({command}) failed: {output}"
    return ""


def _confirm_rollback(item: Item, reason: str, config: Config) -> None:
    """The item's old files are back: rolled back, with what is served now
    (waiting, after a reload, for the previous leaf to come back)."""
    section = item.section
    assert section is not None
    served = ""
    if section.tls_port:
        if item.previous:
            back, served, _error = tlscheck.wait_for_leaf(
                section.tls_host, section.tls_port, item.sni, item.previous,
                config.tls_grace)
        else:
            back, (served, _error) = False, tlscheck.served_leaf(
                section.tls_host, section.tls_port, item.sni)
        if reason and not back:
            _rollback_failed(item, f"the previous files are back in place (in "
                             f"{item.backup_folder}), but {reason}; the server "
                             f"serves {served or 'nothing'}")
            return
    item.served = served
    detail = f"the previous files are back in place (saved in {item.backup_folder})"
    if reason:
        detail += f", but {reason}; the server serves the previous certificate again"
    item.step(ROLLBACK, DONE, detail)
    item.outcome = ROLLED_BACK


def _rollback_failed(item: Item, detail: str) -> None:
    item.step(ROLLBACK, FAILED, detail)
    item.error = f"{item.error}\nThe rollback failed: {detail}"
    item.outcome = FAILED


def _check_backup_dir(folder: str) -> None:
    """backup_dir is made if missing (mode 0700); it must be a real folder of
    this user that no one else may write to (it holds old private keys, and
    old backups are removed from it)."""
    try:
        os.makedirs(folder, mode=0o700, exist_ok=True)
        attrs = os.lstat(folder)
    except OSError as exc:
        raise StepFailed(f"backup_dir {folder}: {words(exc)}") from None
    if not stat.S_ISDIR(attrs.st_mode):
        raise StepFailed(f"backup_dir {folder} is not a folder (a link is refused)")
    if attrs.st_uid != os.geteuid() or attrs.st_mode & 0o022:
        raise StepFailed(f"backup_dir {folder} must belong to this user and be writable by "
                         "its owner only (chmod go-w)")


def _save_original(path: str, backup: str) -> Original:
    try:
        attrs = os.lstat(path)
    except FileNotFoundError:
        return Original(path)
    if not stat.S_ISREG(attrs.st_mode):
        raise StepFailed(f"{path} is not a regular file (a link or other kind of file is "
                         "refused: name the file itself)")
    with open(path, "rb") as source:
        data = source.read()
    mode = stat.S_IMODE(attrs.st_mode)
    fd = os.open(backup, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
    except BaseException:
        os.unlink(backup)
        raise
    return Original(path, backup, mode, attrs.st_uid, attrs.st_gid)


def _restore(original: Original) -> None:
    if not original.backup:  # new on this host: take it away again
        try:
            os.unlink(original.path)
        except FileNotFoundError:
            pass
        return
    with open(original.backup, "rb") as source:
        data = source.read()
    owner = (original.uid, original.gid) if os.geteuid() == 0 else (-1, -1)
    temporary = write_new(original.path, data, original.mode, owner)
    try:
        os.rename(temporary, original.path)
    except OSError:
        os.unlink(temporary)
        raise
    sync_folder(os.path.dirname(original.path))


def prune_backups(backup_dir: str, label: str, kept: int) -> int:
    """Keep the newest ``kept`` backup folders of ``label``; remove older ones.
    Only real folders with the agent's names count; a link with such a name
    was planted (the agent makes none) and is removed as a link, never
    followed. Anything else in ``backup_dir`` is not the agent's and stays."""
    pattern = re.compile(re.escape(label) + r"-\d{8}T\d{6}\.\d{6}Z")
    folders = []
    for entry in os.scandir(backup_dir):
        if not pattern.fullmatch(entry.name):
            continue
        if entry.is_symlink():
            os.unlink(entry.path)
        elif entry.is_dir(follow_symlinks=False):
            folders.append(entry.path)
    old = sorted(folders)[:-kept]
    for folder in old:
        _remove_tree(folder)
    return len(old)


def _remove_tree(folder: str) -> None:
    for entry in os.scandir(folder):
        if entry.is_dir(follow_symlinks=False):
            _remove_tree(entry.path)
        else:
            os.unlink(entry.path)
    os.rmdir(folder)
