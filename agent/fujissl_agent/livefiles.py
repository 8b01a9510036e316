"""Writing a live file so that a reader sees the old file or the new, never
half of one: a new file beside it, its mode set from creation, synced, then
renamed into place and the folder synced."""

from __future__ import annotations

import os
import re
import secrets


def write_new(path: str, data: bytes, mode: int, owner: tuple[int, int]) -> str:
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


def remove_stale_temporaries(path: str) -> None:
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


def sync_folder(folder: str) -> None:
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)

