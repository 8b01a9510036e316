"""Installing certificate versions on this host, and undoing it, as the
portal's SSH path does (certificates/hosts/installer.py in the portal).

The order is the safe one: back up the files that will be replaced, write each
new file to a temporary name beside the live one (the key with its mode from
creation), sync it, rename each into place (a reader sees the old file or the
new, never half of one), test the configuration, reload, then prove with a
TLS handshake that each new leaf is served. Whatever fails after the first
rename puts that certificate's backup back, reloads again, and looks at what
is served then.

The versions of one check-in are installed together: their files first, then
each distinct ``config_test`` once and each distinct ``reload`` once, then one
TLS check per certificate. A config test or reload that fails for the group
says nothing about which certificate broke it, so the group is rolled back
and each one is tried again on its own; a certificate that is not served is
rolled back alone.
"""

from __future__ import annotations

import logging
import os
import re
import secrets
import signal
import stat
import subprocess
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable

from . import certs, keys, tlscheck
from .config import FILE_ROLES, CertificateConfig, Config
from .errors import AgentError
from .state import StateDir, now

log = logging.getLogger("fujissl_agent")

BACKUP_TIME = "%Y%m%dT%H%M%S.%fZ"
OUTPUT_KEPT = 1500

# Step names and statuses are the portal's (docs/agent-protocol.md, section 5).
BACKUP, UPLOAD, INSTALL, CONFIG_TEST, RELOAD, TLS_CHECK, ROLLBACK, CLEANUP = (
    "backup", "upload", "install", "config_test", "reload", "tls_check", "rollback", "cleanup")
STARTED, DONE, FAILED, SKIPPED = "started", "done", "failed", "skipped"
DEPLOYED, ROLLED_BACK = "deployed", "rolled_back"


class StepFailed(Exception):
    """A step did not do what it should; the words are for the report."""

    def __init__(self, message: str, *, transient: bool = False) -> None:
        super().__init__(message)
        self.transient = transient


@dataclass
class Original:
    """A live file as it was before: copied to ``backup`` (empty: there was
    none), with its mode and owner."""

    path: str
    backup: str = ""
    mode: int = 0
    uid: int = -1
    gid: int = -1


@dataclass(eq=False)
class Item:
    """One version to install (an entry of the check-in's ``install``), and
    what became of it: ``outcome`` with ``served`` and ``error``."""

    request: Any
    name: str
    fingerprint: str
    sni: str
    section: CertificateConfig | None
    given: dict[str, str | None]
    files: dict[str, bytes] = field(default_factory=dict)  # role -> data, to install
    key_from_host: bool = False
    originals: list[Original] = field(default_factory=list)
    temporary: dict[str, str] = field(default_factory=dict)  # live path -> temporary path
    backup_folder: str = ""
    previous: str = ""  # the leaf the files held before
    installed: bool = False  # from the first rename on, a failure must roll back
    outcome: str = ""
    served: str = ""
    error: str = ""
    transient: bool = False
    steps: list[dict[str, str]] = field(default_factory=list)

    @classmethod
    def from_portal(cls, entry: dict[str, Any], config: Config) -> Item:
        name = str(entry.get("certificate", ""))
        section = config.certificates.get(name)
        sni = (section.sni if section and section.sni else "") or str(entry.get("sni") or name)
        files = entry.get("files") if isinstance(entry.get("files"), dict) else {}
        return cls(request=entry.get("request"), name=name,
                   fingerprint=str(entry.get("fingerprint", "")).lower().replace(":", ""),
                   sni=tlscheck.check_sni(sni), section=section, given=files)

    def step(self, name: str, status: str, detail: str = "") -> None:
        self.steps.append({"name": name, "status": status, "detail": detail, "at": now()})
        # A failed step is told on stderr by the item's outcome, which says why.
        log.info("[%s] %s %s%s", self.name, name, status, f": {detail}" if detail else "")

    def fail(self, error: str, *, transient: bool = False) -> None:
        if not self.error:
            self.error, self.transient = error, transient

    def report(self) -> dict[str, Any]:
        return {"request": self.request, "outcome": self.outcome,
                "served_fingerprint": self.served, "error": self.error,
                "transient": self.transient, "steps": self.steps}

    def retry_alone(self) -> None:
        self.installed, self.outcome, self.served, self.error = False, "", "", ""


def run_command(command: str, timeout: float) -> tuple[bool, str]:
    """Run the administrator's command line with the shell; (ok, its output,
    trimmed). A command still running after ``timeout`` is killed with its
    process group."""
    process = subprocess.Popen(command, shell=True, stdin=subprocess.DEVNULL,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               start_new_session=True)
    try:
        output, _ = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        output, _ = process.communicate()
        return False, f"still running after {timeout:g} s, stopped; " + _trim(output)
    words = _trim(output)
    if process.returncode != 0:
        return False, f"exit status {process.returncode}" + (f": {words}" if words else "")
    return True, words


def _trim(output: bytes) -> str:
    text = output.decode("utf-8", errors="replace").strip()
    return text if len(text) <= OUTPUT_KEPT else "…" + text[-OUTPUT_KEPT:]


class Installer:
    def __init__(self, config: Config, state: StateDir) -> None:
        self.config, self.state = config, state

    def install(self, items: list[Item]) -> None:
        """Install ``items`` together; each ends with an ``outcome``."""
        ready = [item for item in items if self._prepare(item)]
        try:
            self._install(ready)
        finally:
            for item in ready:
                self._remove_temporary(item)
                if item.backup_folder:
                    self._cleanup(item)

    # -- before anything changes ---------------------------------------------

    def _prepare(self, item: Item) -> bool:
        """What to write, checked before anything is touched; False (the item
        failed, nothing changed) if the versions cannot be installed here."""
        try:
            self._plan(item)
        except StepFailed as exc:
            item.step(BACKUP, SKIPPED, "nothing was changed")
            item.fail(str(exc))
            item.outcome = FAILED
            return False
        return True

    def _plan(self, item: Item) -> None:
        section = item.section
        if section is None:
            raise StepFailed(
                f"the agent's configuration ({self.config.path}) has no section "
                f"[{item.name}]: add one that says where this certificate's files go "
                "(private_key, certificate, backup_dir, ...) and it is installed at the "
                "next check-in")
        leaf_pem = item.given.get("certificate") or item.given.get("fullchain") or ""
        leaf = certs.leaf_fingerprint(leaf_pem.encode())
        if not leaf or (item.fingerprint and leaf != item.fingerprint):
            raise StepFailed(f"the certificate sent ({leaf or 'none'}) is not the one the "
                             f"portal names ({item.fingerprint})")
        item.fingerprint = leaf
        for role in FILE_ROLES:
            if role not in section.paths:
                continue
            data = item.given.get(role)
            if role == "private_key" and data is None:
                item.files[role] = self._key_made_here(section, leaf_pem.encode())
                item.key_from_host = True
            elif data is not None:
                item.files[role] = str(data).encode()

    def _key_made_here(self, section: CertificateConfig, leaf_pem: bytes) -> bytes:
        key = keys.pending_key(self.state, section)
        if key is None:
            raise StepFailed("the portal sent no private key, and no key made on this host "
                             f"is waiting ({self.state.next_key_path(section.label)}); set "
                             "key_on_host = yes so that the agent makes one")
        try:
            matches = keys.public_key(key=key) == keys.public_key(certificate=leaf_pem)
        except AgentError as exc:  # openssl's own words go to the report
            raise StepFailed(f"cannot compare the certificate with the key made here: "
                             f"{exc}") from None
        if not matches:
            raise StepFailed("the certificate sent was not issued for the key waiting on "
                             f"this host ({self.state.next_key_path(section.label)})")
        return key

    # -- the batch -----------------------------------------------------------

    def _install(self, items: list[Item]) -> None:
        live = [item for item in items if self._put_in_place(item)]
        if not live:
            return
        if not self._commands(live, CONFIG_TEST):
            # The running server never loaded the new files: no reload needed.
            self._undo_group(live, reload=False)
            return
        if not self._commands(live, RELOAD):
            self._undo_group(live, reload=True)
            return
        for item in live:
            self._tls_check(item)
        refused = [item for item in live if item.error]
        if refused:
            self._undo(refused, reload=True)
        for item in live:
            if not item.error:
                item.outcome = DEPLOYED

    def _put_in_place(self, item: Item) -> bool:
        steps: list[tuple[str, Callable[[Item], str]]] = [
            (UPLOAD, self._upload), (INSTALL, self._rename_into_place)]
        if not item.originals:  # tried again alone: backed up the first time
            steps.insert(0, (BACKUP, self._backup))
        for name, action in steps:
            try:
                item.step(name, DONE, action(item))
            except (OSError, StepFailed) as exc:
                message = _words(exc)
                item.step(name, FAILED, message)
                item.fail(f"{name}: {message}")
                self._undo([item], reload=False)
                return False
        return True

    def _undo_group(self, items: list[Item], *, reload: bool) -> None:
        if not self._undo(items, reload=reload) or len(items) == 1:
            # A rollback that did not go as planned says the host is at fault, not
            # one of the certificates: trying each alone would only do it again.
            return
        log.warning("the config test or reload failed with %d certificates installed "
                    "together; each is now installed on its own", len(items))
        for item in items:
            item.retry_alone()
            self._install([item])

    # -- the steps -----------------------------------------------------------

    def _backup(self, item: Item) -> str:
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

    def _upload(self, item: Item) -> str:
        section = item.section
        assert section is not None
        owners = {o.path: (o.uid, o.gid) for o in item.originals if o.backup}
        for role, data in item.files.items():
            path = section.paths[role]
            _remove_stale_temporaries(path)
            owner = owners.get(path, (-1, -1)) if os.geteuid() == 0 else (-1, -1)
            item.temporary[path] = _write_new(path, data, section.mode_for(role), owner)
        return ", ".join(section.paths[role] for role in item.files)

    def _rename_into_place(self, item: Item) -> str:
        section = item.section
        assert section is not None
        item.installed = True
        folders = set()
        for role in item.files:
            path = section.paths[role]
            os.rename(item.temporary.pop(path), path)
            folders.add(os.path.dirname(path))
        for folder in folders:
            _sync_folder(folder)
        return f"leaf {item.fingerprint}"

    def _commands(self, items: list[Item], name: str) -> bool:
        """Run each distinct ``config_test`` (or ``reload``) of the items' sections
        once, each step reported to the items it concerns; False at the first
        that fails."""
        by_command: dict[str, list[Item]] = {}
        for item in items:
            command = getattr(item.section, name)
            if command:
                by_command.setdefault(command, []).append(item)
            else:
                item.step(name, SKIPPED, f"no {name} in [{item.name}]")
        for command, concerned in by_command.items():
            for item in concerned:
                item.step(name, STARTED, command)
            ok, output = run_command(command, self.config.command_timeout)
            for item in concerned:
                item.step(name, DONE if ok else FAILED, output)
            if not ok:
                for item in items:
                    item.fail(f"{name} ({command}) failed: {output}",
                              transient="still running after" in output)
                return False
        return True

    def _tls_check(self, item: Item) -> None:
        section = item.section
        assert section is not None
        if not section.tls_port:
            item.step(TLS_CHECK, SKIPPED, f"tls_check = none in [{item.name}]")
            return
        item.step(TLS_CHECK, STARTED, f"{section.tls_host}:{section.tls_port} SNI {item.sni}")
        ok, served, error = tlscheck.wait_for_leaf(section.tls_host, section.tls_port,
                                                   item.sni, item.fingerprint,
                                                   self.config.tls_grace)
        if ok:
            item.served = served
            item.step(TLS_CHECK, DONE, served)
            return
        where = f"{section.tls_host}:{section.tls_port}"
        message = error or (f"{where} still serves the leaf {served} instead of the new "
                            f"{item.fingerprint} after {self.config.tls_grace:g} seconds")
        item.step(TLS_CHECK, FAILED, message)
        item.fail(message, transient=bool(error))

    # -- undo ----------------------------------------------------------------

    def _undo(self, items: list[Item], *, reload: bool) -> bool:
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
        missing = {item: self._restore_files(item) for item in installed}
        restored = [item for item in installed if not missing[item]]
        for item in installed:
            if missing[item]:
                self._rollback_failed(item, "; ".join(missing[item]) + " could not be put "
                                      f"back (the previous files are in {item.backup_folder})")
        reason = ""
        if reload and restored:
            if len(restored) != len(installed):
                reason = ("they were not reloaded, since the files of another certificate "
                          "could not all be put back")
            else:
                reason = self._reload_restored(restored)
        for item in restored:
            self._confirm_rollback(item, reason)
        return not reason and len(restored) == len(installed)

    def _restore_files(self, item: Item) -> list[str]:
        missing = []
        for original in item.originals:
            try:
                _restore(original)
            except OSError as exc:
                missing.append(f"{original.path} ({_words(exc)})")
        item.installed = bool(missing)
        return missing

    def _reload_restored(self, items: list[Item]) -> str:
        commands = []
        for item in items:
            command = item.section.reload if item.section else ""
            if command and command not in commands:
                commands.append(command)
        for command in commands:
            ok, output = run_command(command, self.config.command_timeout)
            if not ok:
                return f"the reload after them ({command}) failed: {output}"
        return ""

    def _confirm_rollback(self, item: Item, reason: str) -> None:
        """The item's old files are back: rolled back, with what is served now
        (waiting, after a reload, for the previous leaf to come back)."""
        section = item.section
        assert section is not None
        served = ""
        if section.tls_port:
            if item.previous:
                back, served, _error = tlscheck.wait_for_leaf(
                    section.tls_host, section.tls_port, item.sni, item.previous,
                    self.config.tls_grace)
            else:
                back, (served, _error) = False, tlscheck.served_leaf(
                    section.tls_host, section.tls_port, item.sni)
            if reason and not back:
                self._rollback_failed(item, f"the previous files are back in place (in "
                                      f"{item.backup_folder}), but {reason}; the server "
                                      f"serves {served or 'nothing'}")
                return
        item.served = served
        detail = f"the previous files are back in place (saved in {item.backup_folder})"
        if reason:
            detail += f", but {reason}; the server serves the previous certificate again"
        item.step(ROLLBACK, DONE, detail)
        item.outcome = ROLLED_BACK

    def _rollback_failed(self, item: Item, detail: str) -> None:
        item.step(ROLLBACK, FAILED, detail)
        item.error = f"{item.error}\nThe rollback failed: {detail}"
        item.outcome = FAILED

    # -- afterwards ----------------------------------------------------------

    def _remove_temporary(self, item: Item) -> None:
        for temporary in item.temporary.values():
            try:
                os.unlink(temporary)
            except OSError:
                pass
        item.temporary.clear()

    def _cleanup(self, item: Item) -> None:
        section = item.section
        assert section is not None
        try:
            removed = prune_backups(section.backup_dir, section.label, section.backups_kept)
        except OSError as exc:
            item.step(CLEANUP, FAILED, _words(exc))
            return
        item.step(CLEANUP, DONE, f"{removed} old backup{'s' if removed != 1 else ''} removed")


def _words(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        where = f": {exc.filename}" if exc.filename else ""
        return f"{exc.strerror.lower()}{where}"
    return str(exc)


def _check_backup_dir(folder: str) -> None:
    """backup_dir is made if missing (mode 0700); it must be a real folder of
    this user that no one else may write to (it holds old private keys, and
    old backups are removed from it)."""
    try:
        os.makedirs(folder, mode=0o700, exist_ok=True)
        attrs = os.lstat(folder)
    except OSError as exc:
        raise StepFailed(f"backup_dir {folder}: {_words(exc)}") from None
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


def _write_new(path: str, data: bytes, mode: int, owner: tuple[int, int]) -> str:
    """A new file beside ``path`` holding ``data``, with ``mode`` from its
    creation (O_EXCL: never one that was there before), synced; its name."""
    folder, base = os.path.split(path)
    temporary = os.path.join(folder, f".{base}.fujissl-agent-{secrets.token_hex(6)}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode & 0o600)
    try:
        if owner != (-1, -1):
            os.fchown(fd, *owner)
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb", closefd=False) as out:
            out.write(data)
            out.flush()
            os.fsync(fd)
    except BaseException:
        os.close(fd)
        os.unlink(temporary)
        raise
    os.close(fd)
    return temporary


def _remove_stale_temporaries(path: str) -> None:
    """Temporary files beside ``path`` left by an agent that was stopped half-way
    (one of them may hold a key): removed, since no other agent runs now."""
    folder, base = os.path.split(path)
    pattern = re.compile(re.escape(f".{base}.fujissl-agent-") + r"[0-9a-f]{12}\.tmp")
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return  # the write that follows says why
    for entry in entries:
        if pattern.fullmatch(entry.name) and not entry.is_dir(follow_symlinks=False):
            try:
                os.unlink(entry.path)
            except OSError:
                pass


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
    temporary = _write_new(original.path, data, original.mode, owner)
    try:
        os.rename(temporary, original.path)
    except OSError:
        os.unlink(temporary)
        raise
    _sync_folder(os.path.dirname(original.path))


def _sync_folder(folder: str) -> None:
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


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
