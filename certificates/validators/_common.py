"""Helpers shared by the validator modules: quoting user input safely in
messages, and coercing raw input to text."""

from __future__ import annotations

import unicodedata


def _display(value: str, limit: int = 80) -> str:
    """Make user input safe to quote in a message.

    Control and invisible characters are shown as escapes (a raw NUL or
    newline in an HTML page or a log line helps nobody), and very long input
    is cut so one bad paste does not produce a megabyte of error text.
    """
    shown = "".join(_escape_invisible(ch) for ch in value[:limit])
    return shown if len(value) <= limit else shown + "…"


def _escape_invisible(ch: str) -> str:
    if unicodedata.category(ch) not in ("Cc", "Cf", "Cs", "Zl", "Zp"):
        return ch
    return f"\\x{ord(ch):02x}" if ord(ch) < 0x100 else f"\\u{ord(ch):04x}"


def _as_text(value) -> str:
    if value is None:
        return ""
    if isinstance(value, (bytes, bytearray, memoryview)):
        # PEM and key text is ASCII; anything else will simply fail to parse.
        return bytes(value).decode("ascii", errors="replace")
    return str(value)
