"""HTTP-01 challenge files under a certificate's ``document_root``.

The only path accepted is ``.well-known/acme-challenge/<token>`` with a token
of ``[A-Za-z0-9_-]+``. Each folder below the document root is opened without
following links (``O_NOFOLLOW`` relative to its parent), so a ``.well-known``
or ``acme-challenge`` that is a symbolic link, which could lead out of the
document root, is refused rather than followed."""

from __future__ import annotations

import logging
import os
import re
import secrets
from typing import Any

from .config import Config

log = logging.getLogger("fujissl_agent")

PATH = re.compile(r"\.well-known/acme-challenge/([A-Za-z0-9_-]+)")
FOLDERS = (".well-known", "acme-challenge")
MAX_CONTENT = 4096


class ChallengeRefused(Exception):
    pass


def _token(path: str) -> str:
    match = PATH.fullmatch(path)
    if not match:
        raise ChallengeRefused(f"refused the path {path!r}: only "
                               ".well-known/acme-challenge/<token> is written or removed, "
                               "with a token of letters, digits, - and _")
    return match.group(1)


def _open_challenge_folder(document_root: str, *, create: bool) -> int | None:
    """A descriptor of ``<document_root>/.well-known/acme-challenge``, each
    folder below the document root opened without following a link; None
    when it does not exist and ``create`` is false."""
    flags = os.O_RDONLY | os.O_DIRECTORY
    try:
        fd = os.open(document_root, flags)
    except OSError as exc:
        raise ChallengeRefused(f"document_root {document_root}: {_words(exc)}") from None
    where = document_root
    for name in FOLDERS:
        where = os.path.join(where, name)
        made = False
        try:
            if create:
                try:
                    os.mkdir(name, 0o755, dir_fd=fd)
                    made = True
                except FileExistsError:
                    pass
            child = os.open(name, flags | os.O_NOFOLLOW, dir_fd=fd)
            if made:
                os.fchmod(child, 0o755)  # the web server reads it, whatever the umask
        except FileNotFoundError:
            os.close(fd)
            if create:
                raise ChallengeRefused(f"{where} could not be made") from None
            return None
        except OSError as exc:
            os.close(fd)
            if os.path.islink(where):
                raise ChallengeRefused(f"refused {where}: it is a symbolic link, and challenge "
                                       "files are written only inside the document root, "
                                       "never through a link") from None
            raise ChallengeRefused(f"{where}: {_words(exc)}") from None
        os.close(fd)
        fd = child
    return fd


def write(document_root: str, path: str, content: str) -> str:
    token = _token(path)
    data = content.encode("utf-8")
    if len(data) > MAX_CONTENT or "\n" in content or "/" in content:
        raise ChallengeRefused("refused the content: not a key authorization")
    folder = _open_challenge_folder(document_root, create=True)
    assert folder is not None
    temporary = f".{token}.{secrets.token_hex(6)}.tmp"
    try:
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644,
                     dir_fd=folder)
        try:
            os.fchmod(fd, 0o644)  # the web server reads it, whatever the umask
            os.write(fd, data)
        finally:
            os.close(fd)
        os.rename(temporary, token, src_dir_fd=folder, dst_dir_fd=folder)
    except OSError as exc:
        try:
            os.unlink(temporary, dir_fd=folder)
        except OSError:
            pass
        raise ChallengeRefused(f"{os.path.join(document_root, path)}: {_words(exc)}") from None
    finally:
        os.close(folder)
    return os.path.join(document_root, path)


def remove(document_root: str, path: str) -> str:
    token = _token(path)
    folder = _open_challenge_folder(document_root, create=False)
    if folder is None:
        return os.path.join(document_root, path)  # already gone
    try:
        os.unlink(token, dir_fd=folder)  # a link itself, never what it points to
    except FileNotFoundError:
        pass
    except OSError as exc:
        raise ChallengeRefused(f"{os.path.join(document_root, path)}: {_words(exc)}") from None
    finally:
        os.close(folder)
    return os.path.join(document_root, path)


def _words(exc: OSError) -> str:
    return (exc.strerror or str(exc)).lower()


def handle(config: Config, challenges: dict[str, Any]) -> dict[str, list[Any]]:
    """Write and remove what the check-in asks; the body of the acknowledgement
    (``POST /agent/v1/challenges``)."""
    done: dict[str, list[Any]] = {"written": [], "removed": [], "failed": []}
    for kind, action in (("write", "written"), ("remove", "removed")):
        for entry in challenges.get(kind) or []:
            try:
                where = _one(config, kind, entry)
            except ChallengeRefused as exc:
                log.warning("challenge %s for [%s]: %s", entry.get("id"),
                            entry.get("certificate"), exc)
                done["failed"].append({"id": entry.get("id"), "error": str(exc)})
                continue
            log.info("challenge %s: %s %s", entry.get("id"), action, where)
            done[action].append(entry.get("id"))
    return done


def _one(config: Config, kind: str, entry: dict[str, Any]) -> str:
    name = str(entry.get("certificate", ""))
    section = config.certificates.get(name)
    if section is None:
        raise ChallengeRefused(f"the agent's configuration ({config.path}) has no section "
                               f"[{name}]; add one with its document_root")
    if not section.document_root:
        raise ChallengeRefused(f"[{name}] has no document_root in {config.path}")
    path = str(entry.get("path", ""))
    if kind == "write":
        return write(section.document_root, path, str(entry.get("content", "")))
    return remove(section.document_root, path)
