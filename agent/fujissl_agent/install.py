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

The backups and the rollback are in rollback.py; the item, its steps and the
commands in steps.py; writing a live file in livefiles.py.
"""

from __future__ import annotations

import logging
import os
from typing import Callable

from . import certs, keys, rollback, tlscheck
from .config import FILE_ROLES, CertificateConfig, Config
from .errors import AgentError
from .livefiles import remove_stale_temporaries, sync_folder, write_new
from .state import StateDir
from .steps import (
    BACKUP,
    CLEANUP,
    CONFIG_TEST,
    DEPLOYED,
    DONE,
    FAILED,
    INSTALL,
    RELOAD,
    SKIPPED,
    STARTED,
    TLS_CHECK,
    UPLOAD,
    Item,
    StepFailed,
    run_command,
    words,
)

log = logging.getLogger("fujissl_agent")


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
            steps.insert(0, (BACKUP, rollback.backup))
        for name, action in steps:
            try:
                item.step(name, DONE, action(item))
            except (OSError, StepFailed) as exc:
                message = words(exc)
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

    def _undo(self, items: list[Item], *, reload: bool) -> bool:
        return rollback.undo(items, self.config, reload=reload)

    # -- the steps -----------------------------------------------------------

    def _upload(self, item: Item) -> str:
        section = item.section
        assert section is not None
        owners = {o.path: (o.uid, o.gid) for o in item.originals if o.backup}
        for role, data in item.files.items():
            path = section.paths[role]
            remove_stale_temporaries(path)
            owner = owners.get(path, (-1, -1)) if os.geteuid() == 0 else (-1, -1)
            item.temporary[path] = write_new(path, data, section.mode_for(role), owner)
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
            sync_folder(folder)
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
            removed = rollback.prune_backups(section.backup_dir, section.label,
                                             section.backups_kept)
        except OSError as exc:
            item.step(CLEANUP, FAILED, words(exc))
            return
        item.step(CLEANUP, DONE, f"{removed} old backup{'s' if removed != 1 else ''} removed")
