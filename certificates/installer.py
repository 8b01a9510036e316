"""Installing one certificate version on one connected host, and undoing it.

The order is the safe one: back up what will be replaced, upload to
temporary names beside the live files, rename each into place (a reader sees
the old file or the new, never half of one), test the configuration, reload,
then prove with a TLS handshake that the new leaf is served. Whatever fails
after the first rename puts the backup back. Used by ``deployment.py``, which
takes the host's lease and records the outcome.
"""

from __future__ import annotations

import posixpath
import re
import time
from collections.abc import Callable
from dataclasses import dataclass

from django.conf import settings
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from . import ssh, tls

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


class InstallFailed(Exception):
    """The version is not installed; ``rolled_back`` says whether the old files are back.

    ``kind`` names what went wrong for code that reacts to it (alerts): the
    class name of the seam's error, "NotServed" or "RollbackFailed".
    """

    def __init__(self, message, *, kind="", transient=False, rolled_back=False,
                 served_fingerprint=""):
        super().__init__(message)
        self.kind = kind or type(self).__name__
        self.transient, self.rolled_back = transient, rolled_back
        self.served_fingerprint = served_fingerprint


@dataclass(frozen=True)
class PlannedFile:
    role: str
    path: str
    data: bytes
    mode: int


@dataclass
class Original:
    """A live file as it was before the deployment (None data: there was none)."""

    path: str
    data: bytes | None = None
    mode: int = 0
    uid: int = 0
    gid: int = 0


def planned_files(version, host) -> list[PlannedFile]:
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
    paths = [f.path for f in files]
    if len(set(paths)) != len(paths):
        raise InstallFailed(
            _("Two of the host's file paths are the same (%(paths)s): each of private key, "
              "certificate, CA bundle and full chain needs its own file.")
            % {"paths": ", ".join(sorted({p for p in paths if paths.count(p) > 1}))}
        )
    return files


class Installer:
    """The steps on one host, each reported through ``report(name, status, detail)``."""

    def __init__(self, session: ssh.Session, *, host, version, files: list[PlannedFile],
                 sni: str, report: Callable[[str, str, str], None]):
        self.session, self.host, self.version, self.sni = session, host, version, sni
        self.files, self.report = files, report
        self.originals: list[Original] = []
        self.temporary: dict[str, str] = {}  # live path -> its temporary name
        self.backup_folder = ""
        self.installed = False

    def install(self) -> str:
        """Install and prove it: the served leaf's fingerprint. Rolls back on failure."""
        try:
            return self._install()
        finally:
            self._remove_temporary()
            if self.backup_folder:
                # After a rollback too: a host that keeps failing must not fill its disk.
                self._step("cleanup", self.cleanup, fatal=False)

    def _install(self) -> str:
        try:
            self._step("backup", self.backup)
            self._step("upload", self.upload)
            self.installed = True  # from the first rename on, a failure must roll back
            self._step("install", self.rename_into_place)
            self._step("config_test", self.config_test)
        except (ssh.SSHError, InstallFailed) as exc:
            # The running server never loaded the new files: no reload needed.
            raise self._undo(exc, reload=False) from exc
        try:
            self._step("reload", self.reload)
            return self._step("tls_check", self.tls_check)
        except (ssh.SSHError, InstallFailed) as exc:
            raise self._undo(exc, reload=True) from exc

    def _step(self, name, action, *, fatal=True):
        try:
            detail = action()
        except (ssh.SSHError, InstallFailed) as exc:
            self.report(name, "failed", str(exc))
            if fatal:
                raise
            return None
        self.report(name, "done", detail)
        return detail

    # -- the steps ------------------------------------------------------------

    def backup(self) -> str:
        folder = posixpath.join(self.host.backup_dir, timezone.now().strftime(BACKUP_NAME))
        # 0700: the backup holds the old private key.
        self.session.makedirs(folder, mode=0o700)
        for planned in self.files:
            original = self._read_original(planned.path)
            self.originals.append(original)
            if original.data is not None:
                name = f"{planned.role}-{posixpath.basename(planned.path)}"
                self.session.write_file(posixpath.join(folder, name), original.data,
                                        mode=original.mode)
        self.backup_folder = folder
        kept = sum(o.data is not None for o in self.originals)
        return ngettext("%(count)s file saved in %(folder)s", "%(count)s files saved in %(folder)s",
                        kept) % {"count": kept, "folder": folder}

    def _read_original(self, path: str) -> Original:
        attrs = self.session.stat(path)
        if attrs is None:
            return Original(path)
        return Original(path, self.session.read_file(path), attrs.st_mode & 0o7777,
                        attrs.st_uid, attrs.st_gid)

    def upload(self) -> str:
        for planned in self.files:
            temporary = self.session.temporary_name(planned.path)
            self.temporary[planned.path] = temporary
            self.session.write_file(temporary, planned.data, mode=planned.mode,
                                    owner=self.host.file_owner, group=self.host.file_group)
        return ", ".join(f.path for f in self.files)

    def rename_into_place(self) -> str:
        for planned in self.files:
            self.session.rename(self.temporary.pop(planned.path), planned.path)
        return _("Leaf %(fingerprint)s") % {"fingerprint": self.version.fingerprint_sha256}

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

    def tls_check(self) -> str:
        """Handshake until the new leaf is served or the grace period runs out."""
        expected = self.version.fingerprint_sha256
        address = self.host.tls_check_address or self.host.address
        deadline = time.monotonic() + settings.DEPLOY_TLS_GRACE_SECONDS
        pause, in_a_row = TLS_RETRY_FIRST, 0
        while True:
            try:
                served, error = tls.served_leaf_sha256(
                    address, self.host.tls_check_port, self.sni,
                    timeout=settings.TLS_CHECK_TIMEOUT), None
            except tls.TLSCheckError as exc:
                served, error = "", exc
            in_a_row = in_a_row + 1 if served == expected else 0
            if in_a_row == TLS_CONFIRMATIONS:
                return served
            if time.monotonic() >= deadline:
                break
            if in_a_row:
                time.sleep(TLS_RETRY_FIRST)  # confirming: a short, steady pace
                continue
            time.sleep(min(pause, max(deadline - time.monotonic(), 0)))
            pause = min(pause * 2, TLS_RETRY_MAX)
        if error is not None:
            raise InstallFailed(str(error), kind=type(error).__name__, transient=error.transient)
        raise InstallFailed(
            _("%(address)s:%(port)s still serves the leaf %(served)s instead of the deployed "
              "%(expected)s after %(seconds)s seconds.")
            % {"address": address, "port": self.host.tls_check_port, "served": served,
               "expected": expected, "seconds": f"{settings.DEPLOY_TLS_GRACE_SECONDS:g}"},
            kind="NotServed", served_fingerprint=served,
        )

    def cleanup(self) -> str:
        """Keep the newest ``backups_to_keep`` backup folders; remove older ones."""
        names = sorted(n for n in self.session.listdir(self.host.backup_dir)
                       if BACKUP_NAME_RE.match(n))
        old = names[:-self.host.backups_to_keep]
        for name in old:
            folder = posixpath.join(self.host.backup_dir, name)
            for entry in self.session.listdir(folder):
                self.session.remove(posixpath.join(folder, entry))
            self.session.rmdir(folder)
        return ngettext("%(count)s old backup removed", "%(count)s old backups removed",
                        len(old)) % {"count": len(old)}

    # -- undo -----------------------------------------------------------------

    def _undo(self, cause: Exception, *, reload: bool) -> InstallFailed:
        """Put the old files back (and reload) if anything was installed."""
        served = getattr(cause, "served_fingerprint", "")
        kind = getattr(cause, "kind", type(cause).__name__)
        if not self.installed:
            return InstallFailed(str(cause), kind=kind, transient=cause.transient)
        try:
            self._step("rollback", lambda: self.restore(reload=reload))
        except (ssh.SSHError, InstallFailed) as exc:
            # What the host serves now is unknown: a person should look.
            return InstallFailed(
                _("%(cause)s\nThe rollback failed as well: %(error)s")
                % {"cause": cause, "error": exc},
                kind="RollbackFailed", served_fingerprint=served,
            )
        return InstallFailed(str(cause), kind=kind, transient=cause.transient,
                             rolled_back=True, served_fingerprint=served)

    def restore(self, *, reload: bool) -> str:
        try:
            self._restore_files()
        except ssh.SSHError as exc:
            raise InstallFailed(
                _("Could not put all the previous files back (%(error)s); they are saved in "
                  "%(folder)s.") % {"error": exc, "folder": self.backup_folder}
            ) from exc
        if reload:
            self.reload()
        return _("The previous files are back in place (saved in %(folder)s).") % {
            "folder": self.backup_folder}

    def _restore_files(self) -> None:
        for original in self.originals:
            if original.data is None:  # new on this host: take it away again
                self.session.remove(original.path)
                continue
            temporary = self.temporary[original.path] = self.session.temporary_name(
                original.path)
            self.session.write_file(temporary, original.data, mode=original.mode,
                                    owner=str(original.uid), group=str(original.gid))
            self.session.rename(self.temporary.pop(original.path), original.path)

    def _remove_temporary(self) -> None:
        for temporary in self.temporary.values():
            try:
                self.session.remove(temporary)
            except ssh.SSHError:
                pass  # best effort: the connection may be what failed
        self.temporary.clear()
