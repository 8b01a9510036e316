"""Input validators for certificate orders and deployment targets.

Every validator either returns the value in normalised form or raises
``django.core.exceptions.ValidationError``. The conventions, so that forms,
the API and the Japanese translation can rely on them:

* each message starts with the field's human name (the ``label`` argument)
  and says what *is* allowed, not only what is wrong;
* messages are lazy translatable templates with ``%(name)s`` params, never
  pre-formatted strings, so translators see the whole sentence;
* every case has its own stable ``code``; callers and tests match on codes,
  never on message text;
* secrets (private keys, TSIG secrets) are never echoed back in messages,
  because messages end up in logs and API responses.

All validators take the value as their only positional argument, so the
plain functions also work in a Django ``validators=[...]`` list (their
return value is then ignored and the default label is used).
"""

# The validators live in submodules by subject: ``names`` (domain names, SAN
# lists, wildcard/challenge rule), ``paths`` (paths and ports), ``keys`` (PEM
# certificates and TLS keys), ``ssh_keys`` (SSH keys) and ``tsig`` (RFC 2136
# TSIG). Import them from here; the submodule layout is not part of the
# public API. Names imported "as" themselves are public but, as before the
# split, not in __all__; the redundant alias marks them as deliberate
# re-exports.

from .addresses import ip_address_of, is_ip_address
from .keys import CERTIFICATE_CHAIN_LABEL as CERTIFICATE_CHAIN_LABEL
from .keys import MIN_RSA_BITS as MIN_RSA_BITS
from .keys import PRIVATE_KEY_LABEL as PRIVATE_KEY_LABEL
from .keys import validate_certificate_chain_pem, validate_private_key_pem
from .names import CHALLENGE_LABEL as CHALLENGE_LABEL
from .names import (
    CHALLENGE_TYPES,
    MAX_DOMAIN_NAME_LENGTH,
    MAX_SAN_NAMES,
    is_wildcard,
    normalize_certificate_name,
    normalize_domain_name,
    normalize_san_list,
    validate_wildcard_challenge,
)
from .names import COMMON_NAME_LABEL as COMMON_NAME_LABEL
from .names import DOMAIN_NAME_LABEL as DOMAIN_NAME_LABEL
from .names import MAX_LABEL_LENGTH as MAX_LABEL_LENGTH
from .names import SAN_LABEL as SAN_LABEL
from .paths import (
    MAX_PATH_LENGTH,
    validate_absolute_path,
    validate_port,
)
from .paths import PATH_LABEL as PATH_LABEL
from .paths import PORT_LABEL as PORT_LABEL
from .ssh_keys import SSH_PRIVATE_KEY_LABEL as SSH_PRIVATE_KEY_LABEL
from .ssh_keys import SSH_PUBLIC_KEY_LABEL as SSH_PUBLIC_KEY_LABEL
from .ssh_keys import (
    SSH_PUBLIC_KEY_TYPES,
    ssh_fingerprint_sha256,
    validate_ssh_private_key,
    validate_ssh_public_key,
)
from .tsig import MIN_TSIG_SECRET_BYTES as MIN_TSIG_SECRET_BYTES
from .tsig import TSIG_ALGORITHM_LABEL as TSIG_ALGORITHM_LABEL
from .tsig import (
    TSIG_ALGORITHMS,
    validate_tsig_algorithm,
    validate_tsig_secret,
)
from .tsig import TSIG_SECRET_LABEL as TSIG_SECRET_LABEL

__all__ = [
    "CHALLENGE_TYPES",
    "MAX_DOMAIN_NAME_LENGTH",
    "MAX_PATH_LENGTH",
    "MAX_SAN_NAMES",
    "SSH_PUBLIC_KEY_TYPES",
    "TSIG_ALGORITHMS",
    "ip_address_of",
    "is_ip_address",
    "is_wildcard",
    "normalize_certificate_name",
    "normalize_domain_name",
    "normalize_san_list",
    "ssh_fingerprint_sha256",
    "validate_absolute_path",
    "validate_certificate_chain_pem",
    "validate_port",
    "validate_private_key_pem",
    "validate_ssh_private_key",
    "validate_ssh_public_key",
    "validate_tsig_algorithm",
    "validate_tsig_secret",
    "validate_wildcard_challenge",
]
