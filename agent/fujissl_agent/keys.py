"""Keys made on the host (``key_on_host = yes``), with the system's ``openssl``:
the next key waits in ``<state_dir>/keys/<label>.next.key`` (mode 0600, the
key never touching a file of any other mode: openssl hands it over on its
standard output) with its CSR beside it, until the portal sends the
certificate issued for that CSR."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess

from .config import CertificateConfig
from .errors import AgentError
from .state import StateDir, write_atomic

log = logging.getLogger("fujissl_agent")

OPENSSL_TIMEOUT = 120
_GENPKEY = {
    "ec": ["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
           "-pkeyopt", "ec_param_enc:named_curve"],
    "rsa": ["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"],
}


def openssl(arguments: list[str], *, data: bytes | None = None) -> bytes:
    binary = shutil.which("openssl") or shutil.which("openssl", path="/usr/bin:/bin")
    if binary is None:
        raise AgentError("the openssl command is needed to make keys on this host; install "
                         "it (Debian: apt-get install openssl)")
    try:
        done = subprocess.run([binary, *arguments], input=data, capture_output=True,
                              timeout=OPENSSL_TIMEOUT, check=False)
    except subprocess.TimeoutExpired:
        raise AgentError(f"openssl {arguments[0]} took over {OPENSSL_TIMEOUT} s") from None
    if done.returncode != 0:
        words = " ".join(done.stderr.decode(errors="replace").split())[:300]
        raise AgentError(f"openssl {arguments[0]} failed: {words}")
    return done.stdout


def pending(state: StateDir, certificate: CertificateConfig) -> bytes | None:
    """The CSR of the key waiting for its certificate, if there is one."""
    try:
        with open(state.next_csr_path(certificate.label), "rb") as csr:
            data = csr.read()
    except FileNotFoundError:
        return None
    if not os.path.exists(state.next_key_path(certificate.label)):
        return None
    return data


def pending_key(state: StateDir, certificate: CertificateConfig) -> bytes | None:
    try:
        with open(state.next_key_path(certificate.label), "rb") as key:
            return key.read()
    except FileNotFoundError:
        return None


def make_next(state: StateDir, certificate: CertificateConfig,
              names: list[str] | None = None) -> bytes:
    """A new key and its CSR naming the certificate's names (as the portal gave
    them; else the section's own); returns the CSR (PEM). Replaces a key still
    waiting."""
    key = openssl(["genpkey", *_GENPKEY[certificate.key_type]])
    key_path = state.next_key_path(certificate.label)
    write_atomic(key_path, key)
    names = names or certificate.names
    csr = openssl(["req", "-new", "-key", key_path, "-sha256", "-subj", f"/CN={names[0]}",
                   "-addext", "subjectAltName=" + ",".join(f"DNS:{n}" for n in names)])
    write_atomic(state.next_csr_path(certificate.label), csr)
    log.info("[%s] made a new %s key and its CSR (%s)", certificate.name,
             certificate.key_type.upper(), key_path)
    return csr


def forget_next(state: StateDir, certificate: CertificateConfig) -> None:
    """The waiting key went into place: remove it and its CSR."""
    for path in (state.next_key_path(certificate.label), state.next_csr_path(certificate.label)):
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass


def public_key(*, key: bytes | None = None, certificate: bytes | None = None) -> bytes:
    """The SubjectPublicKeyInfo (PEM) of a private key or of a certificate."""
    if key is not None:
        return openssl(["pkey", "-pubout"], data=key)
    return openssl(["x509", "-noout", "-pubkey"], data=certificate)
