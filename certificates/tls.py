"""The seam to a host's TLS listener: which leaf certificate does it serve?"""

import hashlib
import socket
import ssl

from django.utils.translation import gettext as _


class TLSCheckError(Exception):
    """No handshake completed. Transient: after a reload a server may need a
    moment, and a port that refuses now may answer in a minute."""

    transient = True


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
            socket.create_connection((address, port), timeout=timeout) as raw,
            _client_context().wrap_socket(raw, server_hostname=sni) as tls,
        ):
            der = tls.getpeercert(binary_form=True)
    except (OSError, ValueError) as exc:  # ssl.SSLError and socket timeouts are OSErrors
        error = TLSCheckError(
            _("No TLS handshake with %(address)s:%(port)s (SNI %(sni)s): %(error)s")
            % {"address": address, "port": port, "sni": sni,
               "error": str(exc) or type(exc).__name__}
        )
        # A ValueError is a name that cannot be sent as SNI: waiting will not fix it.
        error.transient = not isinstance(exc, ValueError)
        raise error from exc
    return hashlib.sha256(der).hexdigest()
