"""STARTTLS: the plain-text part of a mail server's conversation before TLS.

SMTP (RFC 3207), IMAP (RFC 3501) and POP3 (RFC 2595) servers on their
submission and mailbox ports speak in clear first and switch to TLS on a
command. ``upgrade`` speaks the greeting, asks what the server offers and sends
the protocol's STARTTLS command on a socket already connected (through the
egress policy); the caller then wraps the socket for TLS as for a plain TLS
port.

What a server may send is bounded (line length, line count, total bytes) and
every read has the caller's timeout, so that a server that talks without end
or not at all costs one timeout. Failures are ``StartTLSRefused`` with a code
and its parameters (stored, rendered when read) besides the message.
"""

import socket

from django.utils.translation import gettext as _

from .errors import FailureKind, PortalError

TLS, SMTP, IMAP, POP3 = "tls", "smtp", "imap", "pop3"
PROTOCOLS = (TLS, SMTP, IMAP, POP3)
# The well-known ports where each protocol starts in clear (465, 993 and 995
# speak TLS from the first byte: plain TLS).
WELL_KNOWN = {25: SMTP, 587: SMTP, 143: IMAP, 110: POP3}

MAX_LINE = 2048
MAX_LINES = 100
MAX_BYTES = 32 * 1024


class StartTLSRefused(PortalError):
    """The server did not let the conversation reach TLS. ``code`` is one of
    "bad_greeting", "not_offered", "refused", "timeout", "closed"; ``details``
    what the message names. Transient for a timeout or a closed connection."""

    kind = FailureKind.TLS_CHECK_FAILED

    def __init__(self, code: str, message: str, **details: str) -> None:
        super().__init__(message, transient=code in {"timeout", "closed"})
        # Not PortalError's key and params (a catalogue message's): the inventory
        # stores these as a problem of its own, with its own words.
        self.code, self.details = code, details


class _Lines:
    """Lines read from a socket, bounded; never reads past the last line asked
    for more than the server sent (the server sends nothing after its answer to
    STARTTLS until the client's TLS hello)."""

    def __init__(self, sock: socket.socket, protocol: str) -> None:
        self.sock, self.protocol, self.buffer, self.read = sock, protocol, b"", 0

    def line(self) -> str:
        while b"\n" not in self.buffer:
            if len(self.buffer) > MAX_LINE or self.read > MAX_BYTES:
                raise _bad_answer(self.protocol, self.buffer[:80])
            try:
                chunk = self.sock.recv(1024)
            except TimeoutError as exc:
                raise StartTLSRefused("timeout", _(
                    "The %(protocol)s server did not answer in time.")
                    % {"protocol": self.protocol.upper()},
                    protocol=self.protocol.upper()) from exc
            if not chunk:
                raise StartTLSRefused("closed", _(
                    "The %(protocol)s server closed the connection before TLS.")
                    % {"protocol": self.protocol.upper()}, protocol=self.protocol.upper())
            self.buffer += chunk
            self.read += len(chunk)
        raw, self.buffer = self.buffer.split(b"\n", 1)
        return raw.rstrip(b"\r").decode("utf-8", "replace")

    def send(self, command: str) -> None:
        self.sock.sendall(command.encode("ascii") + b"\r\n")


def _shown(text: str | bytes) -> str:
    """A server's words as a message may quote them: short, printable."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    return "".join(c if c.isprintable() else "?" for c in text)[:80]


def _bad_answer(protocol: str, said: str | bytes) -> StartTLSRefused:
    return StartTLSRefused("bad_greeting", _(
        "The server did not answer as a %(protocol)s server: %(answer)s")
        % {"protocol": protocol.upper(), "answer": _shown(said)},
        protocol=protocol.upper(), answer=_shown(said))


def _not_offered(protocol: str) -> StartTLSRefused:
    return StartTLSRefused("not_offered", _(
        "The %(protocol)s server does not offer STARTTLS.")
        % {"protocol": protocol.upper()}, protocol=protocol.upper())


def _refused(protocol: str, said: str) -> StartTLSRefused:
    return StartTLSRefused("refused", _(
        "The %(protocol)s server refused STARTTLS: %(answer)s")
        % {"protocol": protocol.upper(), "answer": _shown(said)},
        protocol=protocol.upper(), answer=_shown(said))


def _smtp_reply(lines: _Lines) -> tuple[str, list[str]]:
    """An SMTP reply: its code and its lines' texts ("250-A", "250 B")."""
    texts = []
    for _count in range(MAX_LINES):
        line = lines.line()
        if len(line) < 3 or not line[:3].isdigit() or line[3:4] not in ("", " ", "-"):
            raise _bad_answer(SMTP, line)
        texts.append(line[4:])
        if line[3:4] != "-":
            return line[:3], texts
    raise _bad_answer(SMTP, texts[-1])


def _smtp(lines: _Lines, client_name: str) -> None:
    code, texts = _smtp_reply(lines)
    if code != "220":
        raise _bad_answer(SMTP, f"{code} {texts[0]}")
    lines.send(f"EHLO {client_name}")
    code, texts = _smtp_reply(lines)
    if code != "250":
        raise _refused(SMTP, f"{code} {texts[0]}")
    if not any(text.split(" ", 1)[0].upper() == "STARTTLS" for text in texts[1:]):
        raise _not_offered(SMTP)
    lines.send("STARTTLS")
    code, texts = _smtp_reply(lines)
    if code != "220":
        raise _refused(SMTP, f"{code} {texts[0]}")


def _imap_tagged(lines: _Lines, tag: str) -> tuple[str, list[str]]:
    """Untagged lines up to the tagged answer; (its status, the untagged lines)."""
    untagged: list[str] = []
    for _count in range(MAX_LINES):
        line = lines.line()
        if line.startswith(f"{tag} "):
            return line[len(tag) + 1:].split(" ", 1)[0].upper(), untagged
        untagged.append(line)
    raise _bad_answer(IMAP, untagged[-1])


def _imap(lines: _Lines) -> None:
    greeting = lines.line()
    if not greeting.upper().startswith("* OK"):
        raise _bad_answer(IMAP, greeting)
    lines.send("a1 CAPABILITY")
    status, untagged = _imap_tagged(lines, "a1")
    capabilities = {word.upper() for line in untagged if line.upper().startswith("* CAPABILITY")
                    for word in line.split()[2:]}
    if status != "OK" or "STARTTLS" not in capabilities:
        raise _not_offered(IMAP)
    lines.send("a2 STARTTLS")
    status, _untagged = _imap_tagged(lines, "a2")
    if status != "OK":
        raise _refused(IMAP, status)


def _pop3(lines: _Lines) -> None:
    greeting = lines.line()
    if not greeting.startswith("+OK"):
        raise _bad_answer(POP3, greeting)
    lines.send("CAPA")
    answer = lines.line()
    capabilities = set()
    if answer.startswith("+OK"):  # a multi-line list ended by "."
        for _count in range(MAX_LINES):
            line = lines.line()
            if line == ".":
                break
            capabilities.add(line.split(" ", 1)[0].upper())
        else:
            raise _bad_answer(POP3, line)
    if "STLS" not in capabilities:
        raise _not_offered(POP3)
    lines.send("STLS")
    answer = lines.line()
    if not answer.startswith("+OK"):
        raise _refused(POP3, answer)


def upgrade(sock: socket.socket, protocol: str, *, client_name: str) -> None:
    """Brings a connected socket to the point where the server expects the TLS
    hello; nothing to do for plain TLS. Raises StartTLSRefused."""
    if protocol == TLS:
        return
    lines = _Lines(sock, protocol)
    if protocol == SMTP:
        _smtp(lines, client_name)
    elif protocol == IMAP:
        _imap(lines)
    elif protocol == POP3:
        _pop3(lines)
    else:
        raise ValueError(f"unknown protocol {protocol!r}")
    if lines.buffer:  # the server spoke after its answer: not what a client can trust
        raise _bad_answer(protocol, lines.buffer[:80])
