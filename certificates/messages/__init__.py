"""Messages as data: a key from the catalogue and its parameters, stored as they
are and put into words when read, in the reader's language.

A worker runs in whatever language it was started with; the person who reads a
run, a mail or an API answer may read another. So nothing the portal tells
people later is stored as text: a step's detail, a run's error, a deployment's
result are stored as ``key`` + ``params`` (JSON) and rendered with
``render(key, params, language)`` by pages (a template filter), the API, mails
and webhooks. Rows written before keys existed have only their text; ``render``
returns that text when there is no key, or a key it does not know.

    message("run.resumed", n=2)                    a Message, to store or raise
    render("run.resumed", {"n": 2}, "ja")          "処理を再開しました（2 回目の試行）。"

Parameters are JSON: strings and numbers as they are, and these, put into words
when read: another message ``{"$message": key, "params": {...}}``, an instant
``{"$instant": iso}``, an amount ``{"$amount": "1100", "currency": "JPY"}``.

No models here: the seams raise errors that carry messages.
"""

from __future__ import annotations

import datetime
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from django.utils import translation
from django.utils.functional import Promise

from certificates.formatting import format_amount, format_datetime

from .catalogue import CATALOGUE, RENDERERS

logger = logging.getLogger(__name__)

Params = dict[str, Any]

# The language of what is stored beside a key as plain text (the `error` and
# `detail` columns) and of webhooks: read by tools and people who search.
STORED_LANGUAGE = "en"


@dataclass(frozen=True)
class Message:
    """A key of the catalogue with its parameters (JSON); ``str()`` renders it
    in the current language."""

    key: str
    params: Params = field(default_factory=dict)
    # The text to show where the key is empty or unknown (a row from before keys).
    text: str = ""

    def __str__(self) -> str:
        return render(self.key, self.params, fallback=self.text)

    def render(self, language: str | None = None) -> str:
        return render(self.key, self.params, language, fallback=self.text)

    def stored_text(self) -> str:
        """The text kept beside the key, in STORED_LANGUAGE."""
        return self.render(STORED_LANGUAGE)

    def as_param(self) -> dict[str, Any]:
        return {"$message": self.key, "params": self.params, **({"text": self.text}
                                                               if self.text else {})}


def message(key: str, **params: Any) -> Message:
    """A message of the catalogue, its parameters made JSON."""
    if key not in CATALOGUE and key not in RENDERERS:
        # A programming error, but one that must not stop a run: it renders
        # readably (see _fallback) and the log says which key is missing.
        logger.error("message key %r is not in the catalogue", key)
    return Message(key, {name: encode(value) for name, value in params.items()})


def text(value: object) -> Message:
    """Text that is the same in every language (a URL, a command's output)."""
    return Message("", {}, str(value))


def as_message(value: object) -> Message:
    """A Message for whatever a caller has: a Message, an error that carries one
    (PortalError.key), or text (kept as it is)."""
    if isinstance(value, Message):
        return value
    key = getattr(value, "key", "")
    if isinstance(value, Exception) and key:
        return Message(key, dict(getattr(value, "params", None) or {}))
    return text("" if value is None else value)


def encode(value: Any) -> Any:
    """A parameter as JSON that render() puts into words when read."""
    if isinstance(value, Message) or (isinstance(value, Exception)
                                      and bool(getattr(value, "key", None))):
        return as_message(value).as_param()
    if isinstance(value, Exception):
        return str(value)
    if isinstance(value, Promise):
        # A translatable string given as a parameter would be frozen in the
        # worker's language: it must be a message of its own.
        logger.error("a translatable string given as a message parameter: %r", value)
        return str(value)
    if isinstance(value, datetime.datetime):
        return {"$instant": value.isoformat()}
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, Mapping):
        return {str(k): encode(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [encode(v) for v in value]
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)


def render(key: str, params: Mapping[str, Any] | None, language: str | None = None, *,
           fallback: str = "") -> str:
    """The message in words, in ``language`` (None: the current one). Never
    raises: an unknown key or parameters that do not fit the words give the
    fallback text, or the key with its parameters."""
    if language:
        with translation.override(language):
            return render(key, params, fallback=fallback)
    params = dict(params or {})
    if not key:
        return fallback
    try:
        renderer = RENDERERS.get(key)
        if renderer is not None:
            return renderer(params, _value)
        words = CATALOGUE.get(key)
        if words is None:
            return fallback or _fallback(key, params)
        if not params:
            return str(words)
        # The lazy string itself: a plural picks its form from the "count" parameter.
        return str(words % {name: _value(value) for name, value in params.items()})
    except Exception:  # noqa: BLE001 - a message must never break a page or a mail
        logger.exception("message %r could not be rendered with %r", key, params)
        return fallback or _fallback(key, params)


def _fallback(key: str, params: Mapping[str, Any]) -> str:
    shown = ", ".join(f"{name}={_plain(value)}" for name, value in params.items())
    return f"{key} ({shown})" if shown else key


def _plain(value: Any) -> str:
    try:
        return str(_value(value))
    except Exception:  # noqa: BLE001 - the last resort must not fail either
        return repr(value)


def _value(value: Any) -> Any:
    """A stored parameter as it is put into the words."""
    if isinstance(value, dict):
        if "$message" in value:
            return render(str(value["$message"]), value.get("params") or {},
                          fallback=str(value.get("text", "")))
        if "$instant" in value:
            return format_datetime(datetime.datetime.fromisoformat(value["$instant"]))
        if "$amount" in value:
            return format_amount(value["$amount"], value.get("currency", ""))
        return value
    if isinstance(value, list):
        return "; ".join(str(_value(v)) for v in value)
    return value


def amount(value: Decimal | int | str, currency: str) -> dict[str, str]:
    return {"$amount": str(value), "currency": currency}


def stored(value: object) -> dict[str, Any]:
    """What a message is stored as: its ``text`` (in STORED_LANGUAGE where it has
    a key, else the text as given), its ``key`` and its ``params``."""
    msg = as_message(value)
    return {"text": msg.stored_text() if msg.key else msg.text, "key": msg.key,
            "params": msg.params}


def stored_fields(field: str, value: object) -> dict[str, Any]:
    """``value`` as a model's three columns ``field``, ``field_key``, ``field_params``."""
    said = stored(value)
    return {field: said["text"], f"{field}_key": said["key"], f"{field}_params": said["params"]}


def message_payload(field: str, value: object) -> dict[str, Any]:
    """A message for a webhook's payload or another tool: ``field`` in English,
    with ``field_key`` and ``field_params`` to act on."""
    msg = as_message(value)
    return {field: msg.render(STORED_LANGUAGE), f"{field}_key": msg.key,
            f"{field}_params": msg.params}


__all__ = ["Message", "message", "text", "as_message", "render", "encode",
           "amount", "stored", "stored_fields", "message_payload", "STORED_LANGUAGE"]
