"""Undoing an installation on a host: each file put back from its backup on its
own, the configuration reloaded, and a handshake deciding whether the old
certificate is served again (then the item is rolled back, whatever the
reload said) or not (then the error says what the host serves)."""

from __future__ import annotations

import hashlib

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from certificates.hosts.confirmation import TLS_CONFIRMATIONS, TLS_RETRY_FIRST, TLSConfirmation
from certificates.hosts.items import InstallFailed, Item, Original
from certificates.messages import Message, message
from certificates.seams import ssh
from certificates.seams.errors import FailureKind, PortalError
from certificates.steps import Step, StepStatus


class Rollback(TLSConfirmation):
    """The rollback of an Installer (which provides session, host, heartbeat, clock
and its steps)."""

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

    def _reload_restored(self, reload: bool, *, complete: bool) -> Message | None:
        """Reload the restored files where the server had loaded the new ones;
        None if that was done or not needed, else why it was not, as a message."""
        if not reload:
            return None  # the running server never loaded the new files
        if not complete:
            # A reload would load the half-restored files of the others.
            return message("rollback.not_reloaded")
        try:
            self.reload()
        except ssh.SSHError as exc:
            return message("rollback.reload_failed", error=exc)
        return None

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
                    message("rollback.link_failed", backup=original.link, path=original.path))
        else:
            self.session.write_file(temporary, original.data or b"", mode=original.mode,
                                    owner=str(original.uid), group=str(original.gid),
                                    fresh=True)
        self.session.rename(item.temporary.pop(original.path), original.path)

    def _rolled_back(self, item: Item, caveat: Message | None = None, *,
                     served: str = "") -> None:
        """The item's old files are back and served; ``caveat``: how that came
        about other than as planned, for the item's error as well as the step."""
        detail = caveat or message("rollback.done", folder=self.backup_folder)
        item.report(Step.ROLLBACK, StepStatus.DONE, detail)
        error = _failed(item.error, rolled_back=True)
        if caveat:
            error = InstallFailed(message("lines", lines=[error, caveat]), kind=error.kind,
                                  transient=error.transient, rolled_back=True,
                                  served_fingerprint=served or error.served_fingerprint)
        item.error = error

    def _restore_failed(self, item: Item, missing: list[tuple[str, ssh.SSHError]]) -> None:
        """Some of the item's old files are not back: what the host serves now is
        unknown, and a person should look."""
        back = [o.path for o in item.originals if o.path not in dict(missing)]
        detail = message(
            "rollback.partial",
            missing=[message("rollback.path_error", path=path, error=error)
                     for path, error in missing],
            back=", ".join(back) or message("none"), folder=self.backup_folder)
        self._rollback_failed(item, detail)

    def _rollback_failed(self, item: Item, detail: Message) -> None:
        item.report(Step.ROLLBACK, StepStatus.FAILED, detail)
        item.error = InstallFailed(
            message("rollback.failed", cause=item.error, detail=detail),
            kind=FailureKind.ROLLBACK_FAILED, served_fingerprint=_served_fingerprint(item.error))

    def _confirm_previous_leaf(self, item: Item, reason: Message) -> None:
        """The item's old files are back but were not reloaded (``reason``): it is
        rolled back if the host serves its previous leaf, as it does when the
        reload that failed never loaded the new files either."""
        previous = self._previous_leaf(item)
        self.heartbeat(waiting=True)
        serving, served = self._serves(item, previous) if previous else (False, "")
        where = {"folder": self.backup_folder, "reason": reason, "previous": previous,
                 "served": served}
        if serving:
            self._rolled_back(item, message("rollback.previous_served", **where),
                              served=previous)
            return
        if not previous:
            detail = message("rollback.previous_unknown", **where)
        else:
            detail = message("rollback.previous_not_served", **where)
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

    def _serves(self, item: Item, fingerprint: str) -> tuple[bool, object]:
        """Whether the host serves ``fingerprint`` for the item's name, in
        TLS_CONFIRMATIONS handshakes in a row (one alone may meet a worker from
        before a reload); if not, what it serves, in words."""
        for attempt in range(TLS_CONFIRMATIONS):
            if attempt:
                self.clock.sleep(TLS_RETRY_FIRST)
            served, error = self._handshake(item)
            if error is not None:
                return False, error
            if served != fingerprint:
                return False, message("rollback.serves", fingerprint=served)
        return True, None


def _served_fingerprint(error: PortalError | None) -> str:
    return error.served_fingerprint if isinstance(error, InstallFailed) else ""


def _failed(cause: PortalError | None, *, rolled_back: bool = False) -> InstallFailed:
    """``cause`` (an SSH error or an InstallFailed) as the item's InstallFailed."""
    if cause is None:  # every caller sets the item's error first
        cause = InstallFailed(message("install.failed"))
    return InstallFailed(cause, kind=cause.kind, transient=cause.transient,
                         rolled_back=rolled_back, served_fingerprint=_served_fingerprint(cause))
