"""Deployment targets: absolute paths and ports."""

from __future__ import annotations

import re
import unicodedata

from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _

from ._common import _as_text, _display

MAX_PATH_LENGTH = 4096  # Linux PATH_MAX, in bytes

# Default field names that start each message when the caller passes no
# ``label``; named constants rather than calls in the signatures (ruff B008).
PATH_LABEL = _("Path")
PORT_LABEL = _("Port")

_PORT_RE = re.compile(r"[0-9]+")


def validate_absolute_path(value, *, label=PATH_LABEL) -> str:
    """Return a POSIX absolute path with duplicate slashes, "." segments and
    any trailing slash removed. ".." is refused rather than resolved: on the
    remote host it may cross a symlink, so its meaning is not ours to decide.

    Surrounding whitespace (e.g. a pasted trailing newline) is stripped.
    """
    raw = _as_text(value).strip()
    params = {"field": label, "value": _display(raw), "limit": MAX_PATH_LENGTH}

    if not raw:
        raise ValidationError(
            _(
                "%(field)s is required: enter an absolute path such as "
                "“/etc/ssl/private/example.key”."
            ),
            code="required",
            params=params,
        )
    # These would end up in remote shell commands and SFTP calls, where a NUL
    # truncates and a newline starts a new command.
    if any(unicodedata.category(ch) in ("Cc", "Cs", "Zl", "Zp") for ch in raw):
        raise ValidationError(
            _(
                "%(field)s “%(value)s” must not contain control characters "
                "such as NUL, tab or newline."
            ),
            code="control_characters",
            params=params,
        )
    if not raw.startswith("/"):
        raise ValidationError(
            _(
                "%(field)s “%(value)s” must be an absolute path starting with "
                "“/”, such as “/etc/ssl/private/example.key”; “~” and relative "
                "paths are not expanded."
            ),
            code="not_absolute",
            params=params,
        )
    segments = raw.split("/")
    if ".." in segments:
        raise ValidationError(
            _(
                "%(field)s “%(value)s” must not contain “..” segments: write "
                "the full path to the file or directory."
            ),
            code="parent_reference",
            params=params,
        )
    kept = [segment for segment in segments if segment not in ("", ".")]
    if not kept:
        raise ValidationError(
            _(
                "%(field)s must not be the root directory “/”: enter the path "
                "of a file or directory below it, such as “/etc/ssl”."
            ),
            code="root",
            params=params,
        )
    normalised = "/" + "/".join(kept)
    if len(normalised.encode("utf-8")) > MAX_PATH_LENGTH:
        raise ValidationError(
            _("%(field)s must be at most %(limit)s bytes long."),
            code="too_long",
            params=params,
        )
    return normalised


def validate_port(value, *, label=PORT_LABEL) -> int:
    """Return the port as an int; accepts an int or a string of ASCII digits."""
    message = _("%(field)s must be a whole number from 1 to 65535 (got “%(value)s”).")
    params = {"field": label, "value": _display(_as_text(value))}
    # bool is an int subclass and int() accepts "٤٤٣", "+443" and "4_43";
    # none of those is a port anyone meant to type.
    if isinstance(value, int) and not isinstance(value, bool):
        port = value
    elif isinstance(value, str) and _PORT_RE.fullmatch(value.strip()):
        port = int(value.strip())
    else:
        raise ValidationError(message, code="invalid_port", params=params)
    if not 1 <= port <= 65535:
        raise ValidationError(message, code="port_out_of_range", params=params)
    return port
