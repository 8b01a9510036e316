"""The seam to a host's TLS listener: which leaf certificate does it serve?"""

import hashlib
import logging
import ssl

from certificates.messages import message
from certificates.seams import starttls
from certificates.seams.errors import FailureKind, PortalError
from fujissl_portal import egress

logger = logging.getLogger(__name__)


class TLSCheckError(PortalError):
    """No handshake completed. Transient: after a reload a server may need a
    moment, and a port that refuses now may answer in a minute."""

    transient = True
    kind = FailureKind.TLS_CHECK_FAILED


def _client_context() -> ssl.SSLContext:
    # We compare the served leaf with the one we deployed, byte for byte; that
    # is a stronger check than chain validation (a private CA, a staging CA or
    # an expired old certificate must all still be seen as what they are).
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def served_leaf_sha256(address: str, port: int, sni: str, *, timeout: float) -> str:
    """Hex SHA-256 of the DER leaf certificate served at ``address:port`` for ``sni``."""
    try:
        with (
            egress.connect(address, port, timeout=timeout) as raw,
            _client_context().wrap_socket(raw, server_hostname=sni) as tls,
        ):
            der = tls.getpeercert(binary_form=True)
    except egress.Refused as exc:
        raise TLSCheckError(
            message("tls.outbound_refused", address=address),
            transient=False, kind=exc.kind) from exc
    except (OSError, ValueError) as exc:  # ssl.SSLError and socket timeouts are OSErrors
        # Refused, timed out or not TLS: the tenant sees one message, so that the
        # check cannot tell what listens on which port; the log has the detail.
        logger.info("TLS check of %s:%s (SNI %s) failed: %r", address, port, sni, exc)
        raise TLSCheckError(
            message("tls.no_handshake", address=address, port=port, sni=sni),
            # A ValueError is a name that cannot be sent as SNI: waiting will not fix it.
            transient=not isinstance(exc, ValueError),
        ) from exc
    if der is None:  # an anonymous cipher suite: no leaf to compare
        raise TLSCheckError(
            message("tls.no_certificate", address=address, port=port, sni=sni),
            transient=False)
    return hashlib.sha256(der).hexdigest()


def served_chain(address: str, port: int, sni: str, *, timeout: float,
                 protocol: str = starttls.TLS, client_name: str = "localhost") -> list[bytes]:
    """The DER certificates served at ``address:port`` for ``sni``, leaf first, as
    sent (unverified: the caller verifies, and says why a chain fails). A mail
    ``protocol`` (starttls.SMTP, IMAP, POP3) is spoken up to its STARTTLS first;
    its refusals are starttls.StartTLSRefused."""
    try:
        with egress.connect(address, port, timeout=timeout) as raw:
            starttls.upgrade(raw, protocol, client_name=client_name)
            with _client_context().wrap_socket(raw, server_hostname=sni or None) as tls:
                # Python 3.13 has SSLSocket.get_unverified_chain(); before it, the
                # same method lives on the socket's SSL object.
                chain = tls._sslobj.get_unverified_chain() or []  # type: ignore[attr-defined]
                ders = [cert.public_bytes(ssl._ssl.ENCODING_DER)  # type: ignore[attr-defined]
                        for cert in chain]
    except egress.Refused as exc:
        raise TLSCheckError(
            message("tls.outbound_refused_any",
                    address=address), transient=False, kind=exc.kind) from exc
    except (OSError, ValueError) as exc:
        logger.info("TLS chain of %s:%s (SNI %s) not read: %r", address, port, sni, exc)
        raise TLSCheckError(
            message("tls.no_handshake_short", address=address, port=port, sni=sni or "—"),
            transient=not isinstance(exc, ValueError)) from exc
    if not ders:
        raise TLSCheckError(
            message("tls.no_certificate", address=address, port=port, sni=sni or "—"),
            transient=False)
    return ders
