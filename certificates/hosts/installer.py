"""Installing certificate versions on one connected host, and undoing it.

The order is the safe one: back up what will be replaced, upload to
temporary names beside the live files, rename each into place (a reader sees
the old file or the new, never half of one), test the configuration, reload,
then prove with a TLS handshake that each new leaf is served. Whatever fails
after the first rename puts that certificate's backup back. A rollback counts
as done when the old files are back and served: if the reload after them fails
too, a handshake decides (a reload that failed twice usually never loaded the
new files either), and the error says which files went back and which did not.

Several certificates bound for one host are installed together: their files
first, then one config test and one reload for all of them, then one TLS check
per certificate. A config test or reload that fails for the group says nothing
about which certificate broke it, so the group is rolled back and each one is
tried again on its own; a certificate the server does not serve is rolled back
alone. Used by ``deployment.py``, which takes the host's lease and records the
outcomes.
"""

from __future__ import annotations

import posixpath
import re
import stat
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from django.utils import timezone

from certificates.hosts.items import Clock, Heartbeat, Item, no_heartbeat
from certificates.hosts.items import InstallFailed as InstallFailed
from certificates.hosts.items import Original as Original
from certificates.hosts.items import PlannedFile as PlannedFile
from certificates.hosts.items import planned_files as planned_files
from certificates.hosts.rollback import Rollback
from certificates.messages import message
from certificates.seams import ssh
from certificates.seams.errors import FailureKind, PortalError
from certificates.steps import Step, StepStatus

if TYPE_CHECKING:
    from certificates.models import TargetHost

# Backup folders are named by this timestamp; anything else in backup_dir is
# not ours and is never pruned.
BACKUP_NAME = "%Y%m%dT%H%M%S.%fZ"
BACKUP_NAME_RE = re.compile(r"^\d{8}T\d{6}\.\d{6}Z$")



















class Installer(Rollback):
    """The steps on one host for one or more items, each step reported to the
    items it concerns. ``heartbeat()`` is called before each step, so that whoever
    holds the host can extend their hold; ``heartbeat(waiting=True)`` before a step
    that may take long (a command, a TLS check), reported as started, so that the
    items' pages show it at once."""

    def __init__(self, session: ssh.Session, *, host: TargetHost, items: list[Item],
                 heartbeat: Heartbeat = no_heartbeat, clock: Clock = time) -> None:
        self.session, self.host, self.items = session, host, items
        self.heartbeat = heartbeat
        self.clock = clock
        self.backup_folder = ""
        self._links = True  # until the server refuses a hard link

    def install(self) -> None:
        """Install every item; each ends with ``served`` or ``error`` set."""
        try:
            self._install(self.items)
        finally:
            for item in self.items:
                self._remove_temporary(item)
            if self.backup_folder:
                # After a rollback too: a host that keeps failing must not fill its disk.
                self._step(Step.CLEANUP, self.items, self.cleanup, fatal=False)

    def _install(self, items: list[Item]) -> None:
        live = [item for item in items if self._put_in_place(item)]
        if not live:
            return
        try:
            self._step(Step.CONFIG_TEST, live, self.config_test, waiting=True)
        except (ssh.SSHError, InstallFailed) as exc:
            # The running server never loaded the new files: no reload needed.
            self._undo_group(live, exc, reload=False)
            return
        try:
            self._step(Step.RELOAD, live, self.reload, waiting=True)
        except (ssh.SSHError, InstallFailed) as exc:
            self._undo_group(live, exc, reload=True)
            return
        self.tls_check(live)
        refused = [item for item in live if item.error is not None]
        if refused:
            self._undo(refused, reload=True)

    def _put_in_place(self, item: Item) -> bool:
        try:
            if not item.originals:  # tried again alone: backed up the first time
                self._step(Step.BACKUP, [item], lambda: self.backup(item))
            self._step(Step.UPLOAD, [item], lambda: self.upload(item))
            item.installed = True
            self._step(Step.INSTALL, [item], lambda: self.rename_into_place(item))
        except (ssh.SSHError, InstallFailed) as exc:
            item.error = exc
            self._undo([item], reload=False)
            return False
        return True

    def _undo_group(self, items: list[Item], cause: PortalError, *, reload: bool) -> None:
        for item in items:
            item.error = cause
        if not self._undo(items, reload=reload) or len(items) == 1:
            # A rollback that did not go as planned (files that would not go back,
            # a reload that failed again) says the host is at fault, not one of
            # the certificates: trying each alone would only do it again.
            return
        # Which certificate broke the group's config test or reload? Each alone says.
        detail = message("install.retry_alone", count=len(items))
        for item in items:
            item.report(Step.RETRY, StepStatus.STARTED, detail)
            item.reset()
            self._install([item])

    def _step(self, name: Step, items: list[Item], action: Callable[[], object], *,
              fatal: bool = True, waiting: bool = False) -> object | None:
        if waiting:
            self._report(items, name, StepStatus.STARTED)
        self.heartbeat(waiting=waiting)
        try:
            detail = action()
        except (ssh.SSHError, InstallFailed) as exc:
            self._report(items, name, StepStatus.FAILED, exc)
            if fatal:
                raise
            return None
        self._report(items, name, StepStatus.DONE, detail)
        return detail

    # -- the steps ------------------------------------------------------------

    def backup(self, item: Item) -> object:
        if not self.backup_folder:
            self._check_backup_dir()
            folder = posixpath.join(self.host.backup_dir, timezone.now().strftime(BACKUP_NAME))
            # 0700: the backup holds the old private keys.
            self.session.makedirs(folder, mode=0o700)
            self.backup_folder = folder
        folder = posixpath.join(self.backup_folder, item.label)
        self.session.makedirs(folder, mode=0o700)
        originals = []
        for planned in item.files:
            backup = posixpath.join(folder, f"{planned.role}-{posixpath.basename(planned.path)}")
            originals.append(self._save_original(planned.path, backup))
        item.originals = originals
        kept = sum(o.existed for o in originals)
        return message("install.backup_saved", count=kept, folder=folder)

    def _save_original(self, path: str, backup: str) -> Original:
        """Keep the live file at ``path`` as ``backup``: as a second name of the
        same file where the server can (no copy, and the owner and mode come
        along), else as a copy, also held here for a rollback."""
        attrs = self.session.stat(path)
        if attrs is None:
            return Original(path)
        if self._links and self.session.hardlink(path, backup):
            return Original(path, link=backup)
        self._links = False  # not on this host (or not across these file systems)
        data = self.session.read_file(path)
        original = Original(path, data, attrs.st_mode & 0o7777, attrs.st_uid, attrs.st_gid)
        self.session.write_file(backup, data, mode=original.mode, fresh=True)
        return original

    def upload(self, item: Item) -> str:
        for planned in item.files:
            temporary = self.session.temporary_name(planned.path)
            item.temporary[planned.path] = temporary
            self.session.write_file(temporary, planned.data, mode=planned.mode,
                                    owner=self.host.file_owner, group=self.host.file_group,
                                    fresh=True)
        return ", ".join(f.path for f in item.files)

    def rename_into_place(self, item: Item) -> object:
        for planned in item.files:
            self.session.rename(item.temporary.pop(planned.path), planned.path)
        return message("install.leaf", fingerprint=item.version.fingerprint_sha256)

    def _check_backup_dir(self) -> None:
        """backup_dir must be a real folder that only its owner may write to:
        anyone else could plant a link in it, and pruning runs as the SSH user."""
        try:
            self.session.check_private_folder(self.host.backup_dir)
        except ssh.UnsafePath as exc:
            raise InstallFailed(message("install.backup_folder", error=exc),
                                kind=FailureKind.UNSAFE_BACKUP_FOLDER) from exc

    def cleanup(self) -> object:
        """Keep the newest ``backups_to_keep`` backup folders; remove older ones.

        Only real folders with the portal's names count. A link bearing such a
        name was planted (the portal makes none): it is removed as a link, never
        followed. Anything else is not the portal's and stays.
        """
        self._check_backup_dir()
        folders, links = [], []
        for name in self.session.listdir(self.host.backup_dir):
            if not BACKUP_NAME_RE.match(name):
                continue
            attrs = self.session.lstat(posixpath.join(self.host.backup_dir, name))
            if attrs is None:
                continue
            if stat.S_ISLNK(attrs.st_mode):
                links.append(name)
            elif stat.S_ISDIR(attrs.st_mode):
                folders.append(name)
        for name in links:
            self.session.remove(posixpath.join(self.host.backup_dir, name))
        old = sorted(folders)[:-self.host.backups_to_keep]
        for name in old:
            self._remove_tree(posixpath.join(self.host.backup_dir, name))
        return message("install.backups_removed", count=len(old))

    def _remove_tree(self, folder: str) -> None:
        # lstat, not stat: a link inside is removed itself, never descended.
        for name in self.session.listdir(folder):
            path = posixpath.join(folder, name)
            attrs = self.session.lstat(path)
            if attrs is not None and stat.S_ISDIR(attrs.st_mode):
                self._remove_tree(path)
            else:
                self.session.remove(path)
        self.session.rmdir(folder)

    # -- undo -----------------------------------------------------------------

    def _remove_temporary(self, item: Item) -> None:
        for temporary in item.temporary.values():
            try:
                self.session.remove(temporary)
            except ssh.SSHError:
                pass  # best effort: the connection may be what failed
        item.temporary.clear()




