"""The agent's own folder (``state_dir``): the credential (mode 0600 from its
creation), the lock that keeps two runs from overlapping, ``state.json`` (what
``status`` shows, and reports not yet delivered), the keys made on the host
(``keys/``) and the logs (``logs/``, rotated)."""

from __future__ import annotations

import errno
import fcntl
import json
import logging
import logging.handlers
import os
import sys
from datetime import datetime, timezone
from typing import Any

from .errors import AgentError
from .livefiles import remove_stale_temporaries, write_new

log = logging.getLogger("fujissl_agent")

LOG_BYTES = 1024 * 1024
LOG_FILES_KEPT = 5


def now() -> str:
    """The current time, ISO 8601 in UTC, as the protocol writes times."""
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def write_atomic(path: str, data: bytes, mode: int = 0o600) -> None:
    """Write ``data`` to ``path`` through a new file that has ``mode`` from its
    creation (never wider), synced, then renamed into place."""
    remove_stale_temporaries(path)  # leftovers of a run that was stopped half-way
    os.rename(write_new(path, data, mode, (-1, -1)), path)


class StateDir:
    def __init__(self, path: str) -> None:
        self.path = path
        self.keys = os.path.join(path, "keys")
        self.logs = os.path.join(path, "logs")
        self.credential_path = os.path.join(path, "credential.json")
        self.state_path = os.path.join(path, "state.json")
        self.lock_path = os.path.join(path, "agent.lock")

    def create(self) -> None:
        for folder in (self.path, self.keys, self.logs):
            try:
                os.makedirs(folder, mode=0o700, exist_ok=True)
            except OSError as exc:
                raise AgentError(f"cannot create the state folder {folder}: "
                                 f"{exc.strerror}") from None

    # -- the credential ------------------------------------------------------

    def read_credential(self) -> dict[str, Any] | None:
        try:
            with open(self.credential_path, encoding="utf-8") as source:
                return json.load(source)
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise AgentError(f"cannot read {self.credential_path}: {exc}; enrol again") from None

    def write_credential(self, credential: dict[str, Any]) -> None:
        write_atomic(self.credential_path, json.dumps(credential, indent=2).encode())

    # -- state.json ----------------------------------------------------------

    def read_state(self) -> dict[str, Any]:
        try:
            with open(self.state_path, encoding="utf-8") as source:
                state = json.load(source)
        except FileNotFoundError:
            state = {}
        except (OSError, ValueError) as exc:
            log.warning("%s cannot be read (%s); starting a new one", self.state_path, exc)
            state = {}
        state.setdefault("certificates", {})
        state.setdefault("pending_reports", [])
        return state

    def write_state(self, state: dict[str, Any]) -> None:
        write_atomic(self.state_path, json.dumps(state, indent=2, sort_keys=True).encode())

    # -- keys made on the host -----------------------------------------------

    def next_key_path(self, label: str) -> str:
        return os.path.join(self.keys, f"{label}.next.key")

    def next_csr_path(self, label: str) -> str:
        return os.path.join(self.keys, f"{label}.next.csr")


class Lock:
    """An exclusive ``flock`` on ``<state_dir>/agent.lock`` for as long as a
    command works: a second run while one holds it stops at once."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.fd: int | None = None

    def acquire(self) -> None:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip()
            os.close(fd)
            if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise AgentError(f"cannot lock {self.path}: {exc.strerror}") from None
            who = f" (process {holder})" if holder else ""
            raise AgentError(f"another fujissl-agent{who} is running with this state folder "
                             f"({self.path}); this one stops") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self.fd = fd

    def release(self) -> None:
        if self.fd is not None:
            os.ftruncate(self.fd, 0)
            os.close(self.fd)  # closing the last descriptor releases the lock
            self.fd = None

    def __enter__(self) -> Lock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


class OneLine(logging.Formatter):
    """A message for a person on one line: a command's output of several
    lines is joined with " | "."""

    def format(self, record: logging.LogRecord) -> str:
        lines = [line.strip() for line in super().format(record).splitlines()]
        return " | ".join(line for line in lines if line)


def setup_logging(*, verbose: bool = False) -> list[logging.Handler]:
    """Messages for a person on stderr: warnings and errors, one line each
    (everything with ``verbose``). Returns the handlers, for
    ``teardown_logging``; ``add_file_log`` adds the log file."""
    stderr = logging.StreamHandler(sys.stderr)
    stderr.setLevel(logging.DEBUG if verbose else logging.WARNING)
    stderr.setFormatter(OneLine("fujissl-agent: %(message)s"))
    log.addHandler(stderr)
    log.setLevel(logging.DEBUG)
    log.propagate = False
    return [stderr]


def add_file_log(handlers: list[logging.Handler], logs_dir: str) -> None:
    """Everything in ``logs_dir/agent.log``, rotated at LOG_BYTES."""
    try:
        rotating = logging.handlers.RotatingFileHandler(
            os.path.join(logs_dir, "agent.log"), maxBytes=LOG_BYTES,
            backupCount=LOG_FILES_KEPT, encoding="utf-8")
    except OSError as exc:
        log.warning("cannot write the log in %s: %s", logs_dir, exc.strerror)
        return
    rotating.setLevel(logging.DEBUG)
    rotating.setFormatter(logging.Formatter(
        "%(asctime)s %(levelname)s [%(process)d] %(message)s"))
    log.addHandler(rotating)
    handlers.append(rotating)


def teardown_logging(handlers: list[logging.Handler]) -> None:
    for handler in handlers:
        log.removeHandler(handler)
        handler.close()
