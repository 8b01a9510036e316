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

import hashlib
import posixpath
import re
import stat
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from django.conf import settings
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from . import ssh, tls
from .errors import FailureKind, PortalError
from .steps import Step, StepStatus

if TYPE_CHECKING:
    from .models import CertificateVersion, TargetHost

# Backup folders are named by this timestamp; anything else in backup_dir is
# not ours and is never pruned.
BACKUP_NAME = "%Y%m%dT%H%M%S.%fZ"
BACKUP_NAME_RE = re.compile(r"^\d{8}T\d{6}\.\d{6}Z$")
# Seconds between handshakes while waiting for a reload: short at first (nginx
# usually takes a tenth of a second), doubling up to a second.
TLS_RETRY_FIRST, TLS_RETRY_MAX = 0.05, 1.0
# Right after a reload, nginx's old workers may still answer some handshakes with
# the old leaf: the new one must come back this many times in a row.
TLS_CONFIRMATIONS = 3

Report = Callable[[str, str, str], None]


class Heartbeat(Protocol):
    """Called before each step, so that whoever holds the host can extend their
    hold; ``waiting``: a step that may take long starts now, so what was
    reported so far should be shown at once rather than held."""

    def __call__(self, *, waiting: bool = False) -> None: ...


def _no_heartbeat(*, waiting: bool = False) -> None:
    pass


class InstallFailed(PortalError):
    """The version is not installed; ``rolled_back`` says whether the old files are
    back, and the host serves what it served before."""

    kind = FailureKind.INSTALL_FAILED

    def __init__(self, message: object, *, kind: FailureKind | None = None,
                 transient: bool = False, rolled_back: bool = False,
                 served_fingerprint: str = "") -> None:
        super().__init__(message, kind=kind, transient=transient)
        self.rolled_back = rolled_back
        self.served_fingerprint = served_fingerprint


@dataclass(frozen=True)
class PlannedFile:
    role: str
    path: str
    data: bytes
    mode: int


@dataclass
class Original:
    """A live file as it was before the deployment: linked into the backup
    (``link``), or copied there and held in ``data``; neither if there was none."""

    path: str
    data: bytes | None = None
    mode: int = 0
    uid: int = 0
    gid: int = 0
    link: str = ""

    @property
    def existed(self) -> bool:
        return self.data is not None or bool(self.link)


@dataclass(eq=False)
class Item:
    """One certificate version to install, and, afterwards, what became of it:
    ``served`` (the leaf's fingerprint) or ``error``."""

    version: CertificateVersion
    files: list[PlannedFile]
    sni: str
    report: Report
    # Its backup's subfolder: the certificate's name, readable by a person
    # looking for an old key, and its id, since two certificates may share a name.
    label: str = ""
    originals: list[Original] = field(default_factory=list)
    temporary: dict[str, str] = field(default_factory=dict)  # live path -> temporary name
    installed: bool = False  # from the first rename on, a failure must roll back
    served: str = ""
    # An InstallFailed, or the SSH error of a login that failed before the installer ran.
    error: PortalError | None = None

    def __post_init__(self) -> None:
        if not self.label:
            certificate = self.version.certificate
            name = re.sub(r"[^A-Za-z0-9.-]", "_", certificate.common_name)
            self.label = f"{name}-{certificate.pk}"

    def reset(self) -> None:
        """Ready to be tried again; its backup and the originals stay."""
        self.installed, self.served, self.error = False, "", None


def planned_files(version: CertificateVersion, host: TargetHost) -> list[PlannedFile]:
    """What goes where: the key, the leaf, the CA bundle and the full chain."""
    key_mode, cert_mode = int(host.key_mode, 8), int(host.cert_mode, 8)
    paths = host.file_paths(version.certificate)
    wanted = [
        ("private_key", paths["private_key_path"], version.private_key, key_mode),
        ("certificate", paths["certificate_path"], version.leaf_pem(), cert_mode),
        ("ca_bundle", paths["ca_bundle_path"], version.intermediates_pem(), cert_mode),
        ("fullchain", paths["fullchain_path"], version.fullchain_pem(), cert_mode),
    ]
    files = [PlannedFile(role, path, text.encode(), mode)
             for role, path, text, mode in wanted if path]
    targets = [f.path for f in files]
    if len(set(targets)) != len(targets):
        raise InstallFailed(
            _("Two of the host's file paths are the same (%(paths)s): each of private key, "
              "certificate, CA bundle and full chain needs its own file.")
            % {"paths": ", ".join(sorted({p for p in targets if targets.count(p) > 1}))}
        )
    return files


class _TLSRounds:
    """Where a TLS check over several items stands: the confirmations in a row
    of each item still waiting, the latest handshake of each, and the items
    given up on. See ``Installer.tls_check``."""

    def __init__(self, items: list[Item]) -> None:
        self.waiting = {item: 0 for item in items}
        self.last: dict[Item, tuple[str, tls.TLSCheckError | None]] = {}
        self.seen: set[Item] = set()  # items whose new leaf came back at least once
        self.given_up: list[Item] = []
        self.rounds_after_deadline = 0

    def record(self, item: Item, served: str, error: tls.TLSCheckError | None) -> bool:
        """One handshake's result; True when it confirms the item's new leaf."""
        self.last[item] = served, error
        if error is not None and not error.transient:
            # An address the outbound policy refuses, a name that cannot be sent:
            # no wait within the grace period changes that.
            self._give_up(item)
            return False
        new = served == item.version.fingerprint_sha256
        self.waiting[item] = self.waiting[item] + 1 if new else 0
        if new:
            self.seen.add(item)
        if self.waiting[item] < TLS_CONFIRMATIONS:
            return False
        del self.waiting[item]
        return True

    def past_deadline(self) -> None:
        """A round ended after the grace period: an item whose leaf is being
        confirmed may finish, within TLS_CONFIRMATIONS more rounds; the others
        are given up on."""
        for item in [item for item, streak in self.waiting.items() if not streak]:
            self._give_up(item)
        self.rounds_after_deadline += 1
        if self.rounds_after_deadline > TLS_CONFIRMATIONS:
            for item in list(self.waiting):
                self._give_up(item)

    def confirming(self) -> bool:
        return any(self.waiting.values())

    def _give_up(self, item: Item) -> None:
        self.given_up.append(item)
        del self.waiting[item]


class Installer:
    """The steps on one host for one or more items, each step reported to the
    items it concerns. ``heartbeat()`` is called before each step, so that whoever
    holds the host can extend their hold; ``heartbeat(waiting=True)`` before a step
    that may take long (a command, a TLS check), reported as started, so that the
    items' pages show it at once."""

    def __init__(self, session: ssh.Session, *, host: TargetHost, items: list[Item],
                 heartbeat: Heartbeat = _no_heartbeat) -> None:
        self.session, self.host, self.items = session, host, items
        self.heartbeat = heartbeat
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
        detail = _("The config test or reload failed with %(count)d certificates installed "
                   "together; each is now installed on its own to find the one at fault.") % {
            "count": len(items)}
        for item in items:
            item.report(Step.RETRY, StepStatus.STARTED, detail)
            item.reset()
            self._install([item])

    def _step(self, name: Step, items: list[Item], action: Callable[[], str], *,
              fatal: bool = True, waiting: bool = False) -> str | None:
        if waiting:
            self._report(items, name, StepStatus.STARTED)
        self.heartbeat(waiting=waiting)
        try:
            detail = action()
        except (ssh.SSHError, InstallFailed) as exc:
            self._report(items, name, StepStatus.FAILED, str(exc))
            if fatal:
                raise
            return None
        self._report(items, name, StepStatus.DONE, detail)
        return detail

    @staticmethod
    def _report(items: list[Item], name: Step, status: StepStatus, detail: str = "") -> None:
        for item in items:
            item.report(name, status, detail)

    # -- the steps ------------------------------------------------------------

    def backup(self, item: Item) -> str:
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
        return ngettext("%(count)s file saved in %(folder)s", "%(count)s files saved in %(folder)s",
                        kept) % {"count": kept, "folder": folder}

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

    def rename_into_place(self, item: Item) -> str:
        for planned in item.files:
            self.session.rename(item.temporary.pop(planned.path), planned.path)
        return _("Leaf %(fingerprint)s") % {"fingerprint": item.version.fingerprint_sha256}

    def config_test(self) -> str:
        return self._run_or_fail(self.host.config_test_command, _("The config test"))

    def reload(self) -> str:
        return self._run_or_fail(self.host.reload_command, _("The reload"))

    def _run_or_fail(self, command: str, what: str) -> str:
        if not command:
            return _("No command configured.")
        result = self.session.run(command)
        if not result.ok:
            raise ssh.CommandFailed(
                _("%(what)s “%(command)s” failed with exit status %(status)s:\n%(output)s")
                % {"what": what, "command": command, "status": result.exit_status,
                   "output": result.output},
                exit_status=result.exit_status, output=result.output,
            )
        return result.output

    def tls_check(self, items: list[Item]) -> None:
        """Handshake, round after round over the items still waiting, until each
        new leaf has been served TLS_CONFIRMATIONS times in a row. Sets ``served``
        or ``error`` on each item.

        The grace period bounds the wait for a new leaf to appear. An item whose
        leaf is already being confirmed when it ends may finish, within
        TLS_CONFIRMATIONS more rounds: a round over a large batch on a loaded
        host can take seconds, and failing (then rolling back) a certificate
        that is being served would be wrong."""
        self._report(items, Step.TLS_CHECK, StepStatus.STARTED)
        self.heartbeat(waiting=True)
        deadline = time.monotonic() + settings.DEPLOY_TLS_GRACE_SECONDS
        rounds = _TLSRounds(items)
        pause = TLS_RETRY_FIRST
        while True:
            self._tls_round(rounds)
            if rounds.waiting and time.monotonic() >= deadline:
                rounds.past_deadline()
            if not rounds.waiting:
                break
            if rounds.confirming():
                time.sleep(TLS_RETRY_FIRST)  # confirming: a short, steady pace
                continue
            # Waiting for the reload to take: show what is confirmed so far.
            self.heartbeat(waiting=True)
            time.sleep(min(pause, max(deadline - time.monotonic(), 0)))
            pause = min(pause * 2, TLS_RETRY_MAX)
        for item in rounds.given_up:
            served, error = rounds.last[item]
            item.error = self._not_served(item, served, error, seen=item in rounds.seen)
            item.report(Step.TLS_CHECK, StepStatus.FAILED, str(item.error))

    def _tls_round(self, rounds: _TLSRounds) -> None:
        for item in list(rounds.waiting):
            self.heartbeat()  # a round over many names may outlast one lease
            served, error = self._handshake(item)
            if rounds.record(item, served, error):
                item.served = served
                item.report(Step.TLS_CHECK, StepStatus.DONE, served)

    def _handshake(self, item: Item) -> tuple[str, tls.TLSCheckError | None]:
        """The leaf the host serves for the item's name, or why there was none."""
        address = self.host.tls_check_address or self.host.address
        try:
            return tls.served_leaf_sha256(address, self.host.tls_check_port, item.sni,
                                          timeout=settings.TLS_CHECK_TIMEOUT), None
        except tls.TLSCheckError as exc:
            return "", exc

    def _not_served(self, item: Item, served: str, error: tls.TLSCheckError | None, *,
                    seen: bool) -> InstallFailed:
        address = self.host.tls_check_address or self.host.address
        where = {"address": address, "port": self.host.tls_check_port,
                 "expected": item.version.fingerprint_sha256, "served": served,
                 "seconds": f"{settings.DEPLOY_TLS_GRACE_SECONDS:g}"}
        if error is not None:
            return InstallFailed(str(error), kind=error.kind, transient=error.transient)
        if seen:  # but never the times in a row it takes
            return InstallFailed(
                _("%(address)s:%(port)s served the deployed leaf %(expected)s only now and "
                  "then in %(seconds)s seconds, and another one in between (%(served)s "
                  "last).") % where,
                # No fingerprint: rolled back, the host serves the old leaf again,
                # and recording this one would mark the deployment as served.
                kind=FailureKind.NOT_SERVED,
            )
        return InstallFailed(
            _("%(address)s:%(port)s still serves the leaf %(served)s instead of the "
              "deployed %(expected)s after %(seconds)s seconds.") % where,
            kind=FailureKind.NOT_SERVED, served_fingerprint=served,
        )

    def _check_backup_dir(self) -> None:
        """backup_dir must be a real folder that only its owner may write to:
        anyone else could plant a link in it, and pruning runs as the SSH user."""
        try:
            self.session.check_private_folder(self.host.backup_dir)
        except ssh.UnsafePath as exc:
            raise InstallFailed(
                _("%(error)s Nothing was deployed; fix the backup folder and deploy again.")
                % {"error": exc}, kind=FailureKind.UNSAFE_BACKUP_FOLDER) from exc

    def cleanup(self) -> str:
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
        return ngettext("%(count)s old backup removed", "%(count)s old backups removed",
                        len(old)) % {"count": len(old)}

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

    def _undo(self, items: list[Item], *, reload: bool) -> bool:
        """Put the old files of ``items`` back (and reload once) where anything
        was installed; each item's ``error`` then says whether that worked. False
        if the rollback did not go as planned for some item (files that would not
        go back, a reload that failed), even where the item was rolled back."""
        for item in items:
            if not item.installed:
                item.error = _failed(item.error)
        installed = [item for item in items if item.installed]
        if not installed:
            return True
        self._report(installed, Step.ROLLBACK, StepStatus.STARTED)
        self.heartbeat(waiting=True)
        missing = {item: self._restore_files(item) for item in installed}
        for item, paths in missing.items():
            if paths:
                self._restore_failed(item, paths)
        restored = [item for item in installed if not missing[item]]
        reason = self._reload_restored(reload, complete=len(restored) == len(installed))
        for item in restored:
            if reason:
                self._confirm_previous_leaf(item, reason)
            else:
                self._rolled_back(item)
        return not reason and len(restored) == len(installed)

    def _reload_restored(self, reload: bool, *, complete: bool) -> str:
        """Reload the restored files where the server had loaded the new ones;
        empty if that was done or not needed, else why it was not, in words."""
        if not reload:
            return ""  # the running server never loaded the new files
        if not complete:
            # A reload would load the half-restored files of the others.
            return _("they were not reloaded, since the files of another certificate could "
                     "not all be put back")
        try:
            self.reload()
        except ssh.SSHError as exc:
            return _("the reload after them failed: %(error)s") % {"error": exc}
        return ""

    def _restore_files(self, item: Item) -> list[tuple[str, ssh.SSHError]]:
        """Put each of the item's old files back (or remove a file that was new);
        the paths that could not be, with why. One failing file does not keep the
        others from going back."""
        missing = []
        for original in item.originals:
            try:
                self._restore_file(item, original)
            except ssh.SSHError as exc:
                missing.append((original.path, exc))
        item.installed = bool(missing)
        return missing

    def _restore_file(self, item: Item, original: Original) -> None:
        if not original.existed:  # new on this host: take it away again
            self.session.remove(original.path)
            return
        temporary = item.temporary[original.path] = self.session.temporary_name(original.path)
        if original.link:
            if not self.session.hardlink(original.link, temporary):
                raise ssh.RemoteFileError(
                    _("Could not link %(backup)s back to %(path)s.")
                    % {"backup": original.link, "path": original.path})
        else:
            self.session.write_file(temporary, original.data or b"", mode=original.mode,
                                    owner=str(original.uid), group=str(original.gid),
                                    fresh=True)
        self.session.rename(item.temporary.pop(original.path), original.path)

    def _rolled_back(self, item: Item, caveat: str = "", *, served: str = "") -> None:
        """The item's old files are back and served; ``caveat``: how that came
        about other than as planned, for the item's error as well as the step."""
        detail = caveat or _("The previous files are back in place (saved in %(folder)s).") % {
            "folder": self.backup_folder}
        item.report(Step.ROLLBACK, StepStatus.DONE, detail)
        error = _failed(item.error, rolled_back=True)
        if caveat:
            error = InstallFailed(f"{error}\n{caveat}", kind=error.kind,
                                  transient=error.transient, rolled_back=True,
                                  served_fingerprint=served or error.served_fingerprint)
        item.error = error

    def _restore_failed(self, item: Item, missing: list[tuple[str, ssh.SSHError]]) -> None:
        """Some of the item's old files are not back: what the host serves now is
        unknown, and a person should look."""
        back = [o.path for o in item.originals if o.path not in dict(missing)]
        detail = _("%(missing)s could not be put back; %(back)s could. The previous files "
                   "are saved in %(folder)s.") % {
            "missing": "; ".join(f"{path} ({error})" for path, error in missing),
            "back": ", ".join(back) or _("none"), "folder": self.backup_folder}
        self._rollback_failed(item, detail)

    def _rollback_failed(self, item: Item, detail: str) -> None:
        item.report(Step.ROLLBACK, StepStatus.FAILED, detail)
        item.error = InstallFailed(
            _("%(cause)s\nThe rollback failed: %(detail)s")
            % {"cause": item.error, "detail": detail},
            kind=FailureKind.ROLLBACK_FAILED, served_fingerprint=_served_fingerprint(item.error))

    def _confirm_previous_leaf(self, item: Item, reason: str) -> None:
        """The item's old files are back but were not reloaded (``reason``): it is
        rolled back if the host serves its previous leaf, as it does when the
        reload that failed never loaded the new files either."""
        previous = self._previous_leaf(item)
        self.heartbeat(waiting=True)
        serving, served = self._serves(item, previous) if previous else (False, "")
        where = {"folder": self.backup_folder, "reason": reason, "previous": previous,
                 "served": served}
        if serving:
            self._rolled_back(item, _(
                "The previous files are back in place (saved in %(folder)s), but %(reason)s. "
                "The host serves the previous certificate (%(previous)s), so nothing changed "
                "for its clients.") % where, served=previous)
            return
        if not previous:
            detail = _("The previous files are back in place (saved in %(folder)s), but "
                       "%(reason)s, and no previous certificate could be read from the backup "
                       "to check what the host serves.") % where
        else:
            detail = _("The previous files are back in place (saved in %(folder)s), but "
                       "%(reason)s, and the host does not serve the previous certificate "
                       "(%(previous)s): %(served)s") % where
        self._rollback_failed(item, detail)

    def _previous_leaf(self, item: Item) -> str:
        """The SHA-256 fingerprint of the leaf the item's files held before, read
        from its backup; empty if there was none or it cannot be read."""
        roles = {planned.path: planned.role for planned in item.files}
        by_role = {roles.get(o.path): o for o in item.originals if o.existed}
        original = by_role.get("certificate") or by_role.get("fullchain")
        if original is None:
            return ""
        try:
            data = original.data if original.data is not None else self.session.read_file(
                original.link)
            leaf = x509.load_pem_x509_certificate(data)
        except (ssh.SSHError, ValueError):
            return ""
        return hashlib.sha256(leaf.public_bytes(Encoding.DER)).hexdigest()

    def _serves(self, item: Item, fingerprint: str) -> tuple[bool, str]:
        """Whether the host serves ``fingerprint`` for the item's name, in
        TLS_CONFIRMATIONS handshakes in a row (one alone may meet a worker from
        before a reload); if not, what it serves, in words."""
        for attempt in range(TLS_CONFIRMATIONS):
            if attempt:
                time.sleep(TLS_RETRY_FIRST)
            served, error = self._handshake(item)
            if error is not None:
                return False, str(error)
            if served != fingerprint:
                return False, _("it serves %(fingerprint)s.") % {"fingerprint": served}
        return True, ""

    def _remove_temporary(self, item: Item) -> None:
        for temporary in item.temporary.values():
            try:
                self.session.remove(temporary)
            except ssh.SSHError:
                pass  # best effort: the connection may be what failed
        item.temporary.clear()


def _served_fingerprint(error: PortalError | None) -> str:
    return error.served_fingerprint if isinstance(error, InstallFailed) else ""


def _failed(cause: PortalError | None, *, rolled_back: bool = False) -> InstallFailed:
    """``cause`` (an SSH error or an InstallFailed) as the item's InstallFailed."""
    if cause is None:  # every caller sets the item's error first
        cause = InstallFailed(FailureKind.INSTALL_FAILED.label)
    return InstallFailed(cause.message, kind=cause.kind, transient=cause.transient,
                         rolled_back=rolled_back, served_fingerprint=_served_fingerprint(cause))
