"""What an installation works on: the items (a version and its files on a host),
their planned files and the originals they replace, and the error an item ends
with."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from certificates.messages import message
from certificates.seams import ssh
from certificates.seams.errors import FailureKind, PortalError
from certificates.steps import Step, StepStatus

if TYPE_CHECKING:
    from certificates.models import CertificateVersion, TargetHost

# A step's name, status and detail (a message of the catalogue, an error, or text).
Report = Callable[[str, str, object], None]


class Heartbeat(Protocol):
    """Called before each step, so that whoever holds the host can extend their
    hold; ``waiting``: a step that may take long starts now, so what was
    reported so far should be shown at once rather than held."""

    def __call__(self, *, waiting: bool = False) -> None: ...


def no_heartbeat(*, waiting: bool = False) -> None:
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
        raise InstallFailed(message(
            "install.same_paths",
            paths=", ".join(sorted({p for p in targets if targets.count(p) > 1}))))
    return files


class Clock(Protocol):
    """What the installer reads the time with: the ``time`` module, or a test's."""

    def monotonic(self) -> float: ...

    def sleep(self, seconds: float) -> None: ...


class OnHost:
    """What the parts of an installation share: the session with the host, the
    host, the hold on it (``heartbeat``), the clock, and the host's commands."""

    session: ssh.Session
    host: TargetHost
    heartbeat: Heartbeat
    clock: Clock
    backup_folder: str

    @staticmethod
    def _report(items: list[Item], name: Step, status: StepStatus, detail: object = "") -> None:
        for item in items:
            item.report(name, status, detail)

    def config_test(self) -> object:
        return self._run_or_fail(self.host.config_test_command, "install.config_test_failed")

    def reload(self) -> object:
        return self._run_or_fail(self.host.reload_command, "install.reload_failed")

    def _run_or_fail(self, command: str, failed: str) -> object:
        """The command's output (or a message that none is configured)."""
        if not command:
            return message("install.no_command")
        result = self.session.run(command)
        if not result.ok:
            raise ssh.CommandFailed(
                message(failed, command=command, status=result.exit_status,
                        output=result.output),
                exit_status=result.exit_status, output=result.output,
            )
        return result.output
