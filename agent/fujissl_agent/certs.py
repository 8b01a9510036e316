"""Reading certificates with the standard library only: the leaf of a PEM file,
its SHA-256 fingerprint (of the DER, as the portal writes it) and its
not-after time (a few lines of DER, enough for X.509's fixed head)."""

from __future__ import annotations

import hashlib
import re
import ssl
from datetime import datetime, timezone

_PEM_CERT = re.compile(rb"-----BEGIN CERTIFICATE-----\s+.*?-----END CERTIFICATE-----", re.S)


def pem_certificates(pem: bytes) -> list[bytes]:
    """The DER of each certificate in ``pem``, in order."""
    found = []
    for block in _PEM_CERT.findall(pem):
        try:
            found.append(ssl.PEM_cert_to_DER_cert(block.decode("ascii")))
        except (ValueError, UnicodeDecodeError):
            continue
    return found


def leaf_der(pem: bytes) -> bytes | None:
    certificates = pem_certificates(pem)
    return certificates[0] if certificates else None


def sha256(der: bytes) -> str:
    return hashlib.sha256(der).hexdigest()


def leaf_fingerprint(pem: bytes) -> str:
    """SHA-256 hex of the first certificate's DER in ``pem``; empty if none."""
    der = leaf_der(pem)
    return sha256(der) if der else ""


def file_fingerprint(path: str) -> str:
    """The fingerprint of the leaf in the file at ``path``; empty if there is
    none or the file cannot be read."""
    try:
        with open(path, "rb") as source:
            return leaf_fingerprint(source.read(1024 * 1024))
    except OSError:
        return ""


def _element(data: bytes, at: int) -> tuple[int, int, int]:
    """(tag, start of content, end of content) of the DER element at ``at``."""
    tag, length = data[at], data[at + 1]
    at += 2
    if length & 0x80:
        count = length & 0x7F
        length = int.from_bytes(data[at:at + count], "big")
        at += count
    if at + length > len(data):
        raise ValueError("truncated DER")
    return tag, at, at + length


def _children(data: bytes, start: int, end: int) -> list[tuple[int, int, int]]:
    found = []
    while start < end:
        element = _element(data, start)
        found.append(element)
        start = element[2]
    return found


def not_after(der: bytes) -> str:
    """The certificate's notAfter, ISO 8601 in UTC; empty if it cannot be read."""
    try:
        _tag, start, end = _element(der, 0)  # Certificate
        _tag, start, end = _children(der, start, end)[0]  # TBSCertificate
        fields = _children(der, start, end)
        if fields[0][0] == 0xA0:  # [0] version
            fields = fields[1:]
        _tag, start, end = fields[3]  # serial, signature, issuer, validity
        tag, start, end = _children(der, start, end)[1]
        text = der[start:end].decode("ascii")
        if tag == 0x17:  # UTCTime: YYMMDDHHMMSSZ
            year = int(text[:2])
            text = f"{1900 + year if year >= 50 else 2000 + year}{text[2:]}"
        moment = datetime.strptime(text, "%Y%m%d%H%M%SZ").replace(tzinfo=timezone.utc)
    except (ValueError, IndexError, UnicodeDecodeError):
        return ""
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")
