"""What an installation is made of (install.py, rollback.py): the versions to
install and what became of each, with the portal's step names and statuses
(docs/agent-protocol.md, section 5), and the administrator's commands run."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
from dataclasses import dataclass, field
from typing import Any

from . import tlscheck
from .config import CertificateConfig, Config
from .state import now

log = logging.getLogger("fujissl_agent")

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


def words(exc: BaseException) -> str:
    """An error as the report says it: an OS error in lower case with its file."""
    if isinstance(exc, OSError) and exc.strerror:
        where = f": {exc.filename}" if exc.filename else ""
        return f"{exc.strerror.lower()}{where}"
    return str(exc)
