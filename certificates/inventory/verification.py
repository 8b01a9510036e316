"""Whether a served chain verifies, and if not, why: each reason a problem of its
own (house style 14: a code with its parameters, rendered when read).

Trust is checked at a moment inside the leaf's validity, so that an expired
certificate is reported as expired, not also as untrusted; the name is checked
on its own for the same reason. The roots are certifi's bundle (or
INVENTORY_TRUST_ROOTS) plus INVENTORY_EXTRA_ROOTS, an organisation's private CA.
"""

import datetime
import functools
import ipaddress
import warnings
from pathlib import Path

import certifi
from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import dsa, ec, rsa
from cryptography.utils import CryptographyDeprecationWarning
from cryptography.x509.verification import PolicyBuilder, Store, VerificationError
from django.conf import settings
from django.utils.translation import gettext as _

from ..formatting import format_date

WEAK_HASHES = {"md5", "sha1"}


def problem(code: str, **params: str) -> dict:
    return {"code": code, "params": params}


def describe(item: dict) -> str:
    """A problem as a sentence, in the current language."""
    params = dict(item.get("params", {}))
    if "date" in params:
        params["date"] = format_date(datetime.date.fromisoformat(params["date"]))
    texts = {
        "untrusted": _("The chain does not lead to a trusted root: %(reason)s"),
        "name": _("The certificate is not valid for the name %(name)s."),
        "expired": _("The certificate expired on %(date)s."),
        "not_yet_valid": _("The certificate is not valid before %(date)s."),
        "weak_key": _("The key is too weak: %(key)s."),
        "weak_signature": _("The certificate is signed with %(algorithm)s, a broken "
                            "algorithm."),
        # Before TLS: certificates.seams.starttls's refusals.
        "starttls_not_offered": _("The %(protocol)s server does not offer STARTTLS."),
        "starttls_bad_greeting": _("The server did not answer as a %(protocol)s server: "
                                   "%(answer)s"),
        "starttls_refused": _("The %(protocol)s server refused STARTTLS: %(answer)s"),
        "starttls_timeout": _("The %(protocol)s server did not answer in time."),
        "starttls_closed": _("The %(protocol)s server closed the connection before TLS."),
    }
    text = texts.get(item.get("code", ""), "%(code)s")
    try:
        return text % params
    except (KeyError, TypeError, ValueError):
        return text


@functools.cache
def _store(roots: str, extra: str) -> Store:
    with warnings.catch_warnings():
        # certifi's bundle holds a root with a serial number of zero, which
        # cryptography reads with a deprecation warning: not the portal's to fix.
        warnings.simplefilter("ignore", CryptographyDeprecationWarning)
        certificates = x509.load_pem_x509_certificates(Path(roots).read_bytes())
    if extra:
        certificates += x509.load_pem_x509_certificates(Path(extra).read_bytes())
    return Store(certificates)


def trust_store() -> Store:
    return _store(settings.INVENTORY_TRUST_ROOTS or certifi.where(),
                  settings.INVENTORY_EXTRA_ROOTS)


def _general_name(name: str) -> x509.DNSName | x509.IPAddress:
    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        return x509.DNSName(name)


def _names(leaf: x509.Certificate) -> list[str]:
    try:
        alt = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    return [*alt.get_values_for_type(x509.DNSName),
            *(str(a) for a in alt.get_values_for_type(x509.IPAddress))]


def name_matches(name: str, names: list[str]) -> bool:
    name = name.lower().rstrip(".")
    for candidate in (n.lower() for n in names):
        if candidate == name:
            return True
        if candidate.startswith("*.") and "." in name and \
                name.split(".", 1)[1] == candidate[2:]:
            return True
    return False


def _trust(leaf: x509.Certificate, intermediates: list[x509.Certificate],
           now: datetime.datetime) -> list[dict]:
    names = _names(leaf)
    if not names:
        return [problem("untrusted", reason=_("the certificate names no host"))]
    moment = min(max(now, leaf.not_valid_before_utc), leaf.not_valid_after_utc)
    verifier = (PolicyBuilder().store(trust_store()).time(moment)
                .build_server_verifier(_general_name(names[0])))
    try:
        verifier.verify(leaf, intermediates)
    except VerificationError as exc:
        return [problem("untrusted", reason=str(exc))]
    return []


def _strength(leaf: x509.Certificate) -> list[dict]:
    found = []
    key = leaf.public_key()
    if isinstance(key, rsa.RSAPublicKey) and key.key_size < 2048:
        found.append(problem("weak_key", key=f"RSA {key.key_size}"))
    elif isinstance(key, ec.EllipticCurvePublicKey) and key.curve.key_size < 256:
        found.append(problem("weak_key", key=f"ECDSA {key.curve.name}"))
    elif isinstance(key, dsa.DSAPublicKey):
        found.append(problem("weak_key", key=f"DSA {key.key_size}"))
    try:
        hash_algorithm = leaf.signature_hash_algorithm
    except UnsupportedAlgorithm:  # an algorithm cryptography does not know: not ours to judge
        hash_algorithm = None
    if hash_algorithm is not None and hash_algorithm.name in WEAK_HASHES:
        found.append(problem("weak_signature", algorithm=hash_algorithm.name.upper()))
    return found


def verify(chain: list[x509.Certificate], name: str, now: datetime.datetime) -> list[dict]:
    """The problems of `chain` (leaf first) served for `name`; [] when it verifies."""
    leaf, intermediates = chain[0], chain[1:]
    found = []
    if leaf.not_valid_after_utc <= now:
        found.append(problem("expired", date=leaf.not_valid_after_utc.date().isoformat()))
    elif leaf.not_valid_before_utc > now:
        found.append(problem("not_yet_valid", date=leaf.not_valid_before_utc.date().isoformat()))
    if name and not name_matches(name, _names(leaf)):
        found.append(problem("name", name=name))
    found += _trust(leaf, intermediates, now)
    return found + _strength(leaf)
