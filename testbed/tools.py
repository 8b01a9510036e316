"""Finding the peers' binaries, and running each peer as a child process."""

import ctypes
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

# Daemons live in /usr/sbin, which is not on every user's PATH.
_SEARCH_PATH = os.pathsep.join([os.environ.get("PATH", os.defpath), "/usr/sbin", "/sbin"])
_POLL_INTERVAL = 0.05


def require(binary: str, package: str) -> str:
    """Absolute path of ``binary``; a test failure naming ``package`` if absent.

    A missing peer must fail loudly (never skip): a skipped test bed would
    let a broken deployment path look green.
    """
    path = shutil.which(binary, path=_SEARCH_PATH)
    if path is None:
        pytest.fail(
            f"`{binary}` not found: install the Debian package `{package}` "
            "(scripts/install-system-packages.sh installs all the peers)",
            pytrace=False,
        )
    return path


# If pytest itself is killed (so no finalizer runs) the kernel sends each
# daemon SIGTERM: no daemon outlives the test session. Looked up here, not in
# the forked child, so the child only makes one system call before exec.
_PR_SET_PDEATHSIG = 1
_prctl = ctypes.CDLL(None, use_errno=True).prctl if sys.platform == "linux" else None


def _die_with_parent() -> None:
    _prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


class Daemon:
    """One long-running process, its output appended to ``log``.

    The child gets a session of its own, so a Ctrl-C at the terminal reaches
    pytest only (whose finalizers then stop it), and ``stop()`` can signal
    the whole process group (nginx's workers with their master).
    """

    def __init__(self, name: str, argv: list[str], log: Path, env: dict | None = None):
        self.name, self.argv, self.log, self.env = name, argv, log, env
        self.proc: subprocess.Popen | None = None

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self) -> None:
        if self.running:
            return
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(
                self.argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                env=self.env, start_new_session=True,
                preexec_fn=_die_with_parent if _prctl else None,  # noqa: PLW1509 (see above)
            )

    def stop(self, timeout: float = 10) -> None:
        """Stop the process group: SIGTERM, then SIGKILL after ``timeout``."""
        if self.proc is None:
            return
        self._signal_group(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self._signal_group(signal.SIGKILL)
            self.proc.wait()
        self._signal_group(signal.SIGKILL)  # stragglers of the group, if any
        self.proc = None

    def _signal_group(self, sig: int) -> None:
        try:
            os.killpg(self.proc.pid, sig)
        except ProcessLookupError:
            pass

    def wait_until(self, check: Callable[[], bool], what: str, timeout: float = 30,
                   not_yet: tuple[type[Exception], ...] = (OSError,)) -> None:
        """Poll ``check`` until true; fail with the log's tail on exit or timeout.

        Exceptions in ``not_yet`` (refused connections, by default) mean
        "not up yet"; any other one is a bug and propagates.
        """
        deadline = time.monotonic() + timeout
        last_error = None
        while True:
            if not self.running:
                code = self.proc.returncode if self.proc else None
                self._fail(f"{self.name} exited (status {code}) before {what}")
            try:
                if check():
                    return
            except not_yet as error:  # keep it for the report
                last_error = error
            if time.monotonic() > deadline:
                self._fail(f"{self.name} not {what} after {timeout} s (last error: {last_error!r})")
            time.sleep(_POLL_INTERVAL)

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return "(no log written)"

    def _fail(self, message: str) -> None:
        self.stop()
        pytest.fail(f"{message}\n--- tail of {self.log} ---\n{self.log_tail()}", pytrace=False)
