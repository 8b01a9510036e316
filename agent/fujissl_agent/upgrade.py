"""``upgrade``: the portal's single-file agent in place of this one, if and
only if its SHA-256 is the one SHA256SUMS gives."""

from __future__ import annotations

import hashlib
import io
import os
import re
import sys
import zipfile

from .client import Portal
from .errors import AgentError
from .state import write_atomic

ZIPAPP = "fujissl-agent.pyz"
SUMS = "SHA256SUMS"


def running_zipapp() -> str | None:
    """The path of the single-file agent this process runs from, if it does."""
    path = os.path.abspath(sys.argv[0]) if sys.argv and sys.argv[0] else ""
    if path and os.path.isfile(path) and zipfile.is_zipfile(path):
        return path
    return None


def expected_sum(sums: bytes) -> str:
    """The SHA-256 that SHA256SUMS (``sha256sum`` output) gives the zipapp."""
    for line in sums.decode("utf-8", errors="replace").splitlines():
        match = re.fullmatch(r"([0-9a-fA-F]{64}) [ *]" + re.escape(ZIPAPP), line.strip())
        if match:
            return match.group(1).lower()
    raise AgentError(f"refused: {SUMS} from the portal has no line for {ZIPAPP}; "
                     "nothing was replaced")


def version_of(archive: bytes) -> str:
    """The version inside a downloaded zipapp (and the proof that it is one)."""
    try:
        with zipfile.ZipFile(io.BytesIO(archive)) as bundle:
            init = bundle.read("fujissl_agent/__init__.py").decode("utf-8")
            bundle.getinfo("__main__.py")
    except (zipfile.BadZipFile, KeyError, UnicodeDecodeError):
        raise AgentError(f"refused: the {ZIPAPP} downloaded is not the agent; nothing was "
                         "replaced") from None
    match = re.search(r"__version__\s*=\s*[\"']([^\"']+)[\"']", init)
    return match.group(1) if match else "unknown"


def upgrade(portal: Portal, target: str) -> str:
    """Download, check, and replace ``target`` atomically; what was done, in words."""
    archive = portal.download(ZIPAPP)
    sums = portal.download(SUMS)
    wanted, got = expected_sum(sums), hashlib.sha256(archive).hexdigest()
    if got != wanted:
        raise AgentError(f"refused: the SHA-256 of the downloaded {ZIPAPP} ({got}) is not the "
                         f"one in {SUMS} ({wanted}); nothing was replaced")
    version = version_of(archive)
    try:
        mode = os.stat(target).st_mode & 0o777
    except FileNotFoundError:
        mode = 0o755
    try:
        write_atomic(target, archive, mode)
    except OSError as exc:
        raise AgentError(f"cannot replace {target}: {exc.strerror or exc}") from None
    return f"{target} is now version {version} (sha256 {got})"
