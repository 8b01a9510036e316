"""Domain names: normalisation, IDNA, SAN lists and the wildcard/challenge rule."""

from __future__ import annotations

import ipaddress
import re

from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _

from ._common import _as_text, _display
from .addresses import ip_address_of, is_ip_address

try:
    import idna  # IDNA 2008 + UTS #46; installed as a dependency of requests
except ImportError:  # pragma: no cover - only hit if requests is ever dropped
    idna = None

MAX_DOMAIN_NAME_LENGTH = 253  # RFC 1035 limit in presentation form, no trailing dot
MAX_LABEL_LENGTH = 63
MAX_SAN_NAMES = 100  # Let's Encrypt's per-certificate limit, common name included
CHALLENGE_TYPES = ("http-01", "dns-01")

# Default field names that start each message when the caller passes no
# ``label``; named constants rather than calls in the signatures (ruff B008).
DOMAIN_NAME_LABEL = _("Domain name")
COMMON_NAME_LABEL = _("Common name")
SAN_LABEL = _("Subject alternative names")
CHALLENGE_LABEL = _("Challenge type")

# Anything much longer than a valid name cannot become valid; refuse it before
# doing IDNA work on attacker-sized input.
_MAX_DOMAIN_INPUT_LENGTH = 1024
_MAX_SAN_INPUT_ENTRIES = 10 * MAX_SAN_NAMES

# UTS #46 treats these full stops as label separators too, so a name typed with
# a Japanese input method ("日本語。jp") splits the way the user meant.
_DOTS_RE = re.compile("[.\u3002\uff0e\uff61]")
_LDH_LABEL_RE = re.compile(r"[a-z0-9](?:[a-z0-9-]*[a-z0-9])?")
_DIGITS_RE = re.compile(r"[0-9]+")
_DIGITS_AND_DOTS_RE = re.compile(r"[0-9.]+")
_SAN_SEPARATORS_RE = re.compile(r"[\s,]+")


def normalize_domain_name(
    value: str,
    *,
    label=DOMAIN_NAME_LABEL,
    allow_wildcard: bool = True,
) -> str:
    """Return ``value`` as a lower-case A-label name, or raise ValidationError.

    "Bücher.Example." becomes "xn--bcher-kva.example"; "*.example.com" is kept
    when ``allow_wildcard`` is true.
    """
    raw = _as_text(value).strip()
    params = {"field": label, "value": _display(raw)}

    if not raw:
        raise ValidationError(
            _("%(field)s is required: enter a domain name such as “www.example.com”."),
            code="required",
            params=params,
        )
    if len(raw) > _MAX_DOMAIN_INPUT_LENGTH:
        raise _domain_too_long(params)

    # A single trailing dot is the DNS root ("example.com." is fully
    # qualified); certificates carry the name without it.
    name = raw[:-1] if _DOTS_RE.fullmatch(raw[-1]) else raw

    if _looks_like_ip_address(name):
        raise ValidationError(
            _(
                "%(field)s “%(value)s” is an IP address: certificates here are "
                "issued for DNS names only, so enter a domain name such as "
                "“www.example.com”."
            ),
            code="ip_address",
            params=params,
        )

    labels = _DOTS_RE.split(name)
    wildcard = "*" in name
    if wildcard:
        labels = _below_wildcard(labels, params, allow_wildcard=allow_wildcard)

    ascii_labels = [_to_ascii_label(part, params) for part in labels]

    if len(ascii_labels) < 2:
        raise ValidationError(
            _(
                "%(field)s “%(value)s” is not a fully qualified domain name: it "
                "needs at least two labels, such as “example.com”."
            ),
            code="not_fqdn",
            params=params,
        )
    if _DIGITS_RE.fullmatch(ascii_labels[-1]):
        raise ValidationError(
            _(
                "%(field)s “%(value)s” is not a valid domain name: the last "
                "label (the top-level domain) must not be all digits."
            ),
            code="numeric_tld",
            params=params,
        )

    result = ".".join((["*"] if wildcard else []) + ascii_labels)
    if len(result) > MAX_DOMAIN_NAME_LENGTH:
        raise _domain_too_long(params)
    return result


def normalize_certificate_name(value: str, *, label=DOMAIN_NAME_LABEL,
                               allow_ip_address: bool = False) -> str:
    """A name a certificate may carry: a domain name (``normalize_domain_name``)
    or, where ``allow_ip_address``, an IP address (RFC 8738) in its canonical
    text form ("2001:DB8:0::1" becomes "2001:db8::1", "[::1]" becomes "::1")."""
    if allow_ip_address:
        address = ip_address_of(value)
        if address is not None:
            params = {"field": label, "value": _display(_as_text(value).strip())}
            if address.is_unspecified or address.is_multicast:
                raise ValidationError(
                    _("%(field)s “%(value)s” is not an address a server can be reached at: "
                      "enter the server's unicast IP address."),
                    code="ip_address_unusable", params=params)
            return str(address)
    return normalize_domain_name(value, label=label)


def _below_wildcard(labels: list[str], params, *, allow_wildcard: bool) -> list[str]:
    """The labels of a wildcard name after its "*", if it is one the portal takes."""
    if not allow_wildcard:
        raise ValidationError(
            _(
                "%(field)s “%(value)s” must not be a wildcard name: enter a "
                "single host name such as “www.example.com”."
            ),
            code="wildcard_not_allowed",
            params=params,
        )
    if labels[0] != "*" or any("*" in part for part in labels[1:]):
        raise ValidationError(
            _(
                "%(field)s “%(value)s” is not a valid wildcard name: “*” is "
                "allowed only as the whole leftmost label, as in "
                "“*.example.com”."
            ),
            code="invalid_wildcard",
            params=params,
        )
    # "*" and "*.com" would cover a whole top-level domain; CAs refuse
    # them, so say so here instead of failing the order later.
    if len(labels) < 3:
        raise ValidationError(
            _(
                "%(field)s “%(value)s” is too broad a wildcard: “*.” must "
                "be followed by at least two labels, as in “*.example.com”."
            ),
            code="wildcard_too_broad",
            params=params,
        )
    return labels[1:]


def is_wildcard(name) -> bool:
    """True when the leftmost label of ``name`` is "*" (e.g. "*.example.com")."""
    return isinstance(name, str) and name.strip().split(".", 1)[0] == "*"


def _domain_too_long(params) -> ValidationError:
    return ValidationError(
        _(
            "%(field)s “%(value)s” is too long: a domain name may be at most "
            "%(limit)s characters in its ASCII (A-label) form."
        ),
        code="too_long",
        params={**params, "limit": MAX_DOMAIN_NAME_LENGTH},
    )


def _looks_like_ip_address(name: str) -> bool:
    candidate = name[1:-1] if name.startswith("[") and name.endswith("]") else name
    try:
        ipaddress.ip_address(candidate)
    except ValueError:
        # Shorthand such as "10.1" or "010.0.0.1" is not a valid IP literal
        # but is meant as one, and is certainly not a DNS name.
        return bool(_DIGITS_AND_DOTS_RE.fullmatch(name)) and any(c.isdigit() for c in name)
    return True


def _to_ascii_label(part: str, params) -> str:
    """Validate one label and return its A-label (ASCII) form."""
    invalid_idn = ValidationError(
        _(
            "%(field)s “%(value)s” is not a valid domain name: the label "
            "“%(dns_label)s” is not a valid internationalised (IDNA 2008) label; "
            "it contains characters that are not allowed in domain names, or "
            "is longer than 63 characters once converted."
        ),
        code="invalid_idn",
        params={**params, "dns_label": _display(part)},
    )

    if part.isascii():
        ascii_label = part.lower()
    else:
        try:
            ascii_label = _idna_to_ascii(part)
        except ValueError:  # idna.IDNAError and UnicodeError are ValueErrors
            raise invalid_idn from None

    if len(ascii_label) > MAX_LABEL_LENGTH or not _LDH_LABEL_RE.fullmatch(ascii_label):
        raise ValidationError(
            _(
                "%(field)s “%(value)s” is not a valid domain name: each label "
                "must be 1–63 letters, digits or hyphens, not starting or "
                "ending with a hyphen."
            ),
            code="invalid_label",
            params=params,
        )
    if ascii_label.startswith("xn--"):
        # An A-label typed by hand must decode, or duplicate detection (which
        # compares A-labels) and the CA would both disagree with the user.
        if not _is_valid_a_label(ascii_label):
            raise invalid_idn
    elif ascii_label[2:4] == "--":
        # RFC 5891 reserves "??--" for IDNA prefixes; CAs such as Let's
        # Encrypt refuse these labels, so catch them before ordering.
        raise ValidationError(
            _(
                "%(field)s “%(value)s” is not a valid domain name: the label "
                "“%(dns_label)s” has hyphens in the third and fourth positions, "
                "which is reserved for internationalised labels starting "
                "with “xn--”."
            ),
            code="reserved_label",
            params={**params, "dns_label": _display(ascii_label)},
        )
    return ascii_label


def _idna_to_ascii(part: str) -> str:
    if idna is not None:
        # UTS #46 mapping folds case and width ("Ｂücher" -> "bücher") the way
        # browsers do; std3_rules is off so that ASCII problems such as "_"
        # reach our own label check and get our message.
        mapped = idna.uts46_remap(part, std3_rules=False, transitional=False)
        if mapped.isascii():
            return mapped
        return idna.alabel(mapped).decode("ascii")
    # Python's built-in codec implements the older IDNA 2003; good enough as
    # a fallback, and it case-folds via nameprep.
    return part.encode("idna").decode("ascii")


def _is_valid_a_label(ascii_label: str) -> bool:
    try:
        if idna is not None:
            return idna.alabel(idna.ulabel(ascii_label)).decode("ascii") == ascii_label
        unicode_label = ascii_label.encode("ascii").decode("idna")
        return unicode_label.encode("idna").decode("ascii") == ascii_label
    except ValueError:  # idna.IDNAError and UnicodeError are ValueErrors
        return False


def normalize_san_list(
    values,
    *,
    common_name: str | None = None,
    label=SAN_LABEL,
    allow_ip_addresses: bool = False,
) -> list[str]:
    """Normalise subject alternative names; the common name comes first.

    ``values`` is a list of names or one string separated by commas,
    whitespace or newlines (list items are split the same way). IP addresses
    (RFC 8738) are taken where ``allow_ip_addresses``. Repeating
    the common name among the SANs is folded silently, because people
    commonly do that; any other repetition is an error. All problems are
    reported together in one ValidationError.
    """
    entries = _split_san_entries(values)
    if len(entries) > _MAX_SAN_INPUT_ENTRIES:
        raise _too_many_names(label, len(entries))

    errors: list[ValidationError] = []
    normalised_cn = None
    if common_name is not None and str(common_name).strip():
        try:
            normalised_cn = normalize_certificate_name(
                common_name, label=COMMON_NAME_LABEL, allow_ip_address=allow_ip_addresses)
        except ValidationError as error:
            errors.append(error)

    spellings: dict[str, list[str]] = {}  # normalised name -> entries as typed
    for entry in entries:
        try:
            name = normalize_certificate_name(entry, label=label,
                                              allow_ip_address=allow_ip_addresses)
        except ValidationError as error:
            errors.append(error)
            continue
        spellings.setdefault(name, []).append(entry)

    for name, typed in spellings.items():
        if len(typed) > 1:
            errors.append(
                ValidationError(
                    _(
                        "%(field)s list “%(name)s” more than once (entered as "
                        "%(entries)s): list each name only once."
                    ),
                    code="duplicate",
                    params={
                        "field": label,
                        "name": name,
                        "entries": ", ".join(f"“{_display(t)}”" for t in typed),
                    },
                )
            )

    result = [normalised_cn] if normalised_cn else []
    result += [name for name in spellings if name != normalised_cn]
    if len(result) > MAX_SAN_NAMES:
        errors.append(_too_many_names(label, len(result)))

    if errors:
        raise ValidationError(errors)
    return result


def _split_san_entries(values) -> list[str]:
    if values is None:
        return []
    if isinstance(values, str):
        values = [values]
    entries = []
    for item in values:
        if item is not None:
            entries += [e for e in _SAN_SEPARATORS_RE.split(str(item)) if e]
    return entries


def _too_many_names(label, count: int) -> ValidationError:
    return ValidationError(
        _(
            "%(field)s: a certificate can cover at most %(limit)s names, "
            "counting the common name, but %(count)s were given."
        ),
        code="too_many_names",
        params={"field": label, "limit": MAX_SAN_NAMES, "count": count},
    )


def validate_wildcard_challenge(names, challenge, *, label=CHALLENGE_LABEL) -> None:
    """Refuse wildcard names unless the challenge is DNS-01.

    CAs (Let's Encrypt included) validate a wildcard name only over DNS, so
    an HTTP-01 order for one would always fail.
    """
    if challenge not in CHALLENGE_TYPES:
        raise ValidationError(
            _("%(field)s “%(value)s” is not supported: choose one of %(allowed)s."),
            code="invalid_challenge",
            params={
                "field": label,
                "value": _display(_as_text(challenge)),
                "allowed": ", ".join(CHALLENGE_TYPES),
            },
        )
    if isinstance(names, str):
        names = [names]
    wildcards = [name for name in names or () if is_wildcard(name)]
    if wildcards and challenge != "dns-01":
        raise ValidationError(
            _(
                "%(field)s must be dns-01 for wildcard names (%(names)s): "
                "wildcard certificates can only be validated over DNS. Choose "
                "dns-01 or remove the wildcard names."
            ),
            code="wildcard_needs_dns01",
            params={"field": label, "names": ", ".join(wildcards)},
        )
    addresses = [name for name in names or () if is_ip_address(name)]
    if addresses and challenge != "http-01":
        raise ValidationError(
            _(
                "%(field)s must be http-01 for IP addresses (%(names)s): a CA validates "
                "an IP address by connecting to it (RFC 8738), not over DNS. Choose "
                "http-01 or remove the IP addresses."
            ),
            code="ip_address_needs_http01",
            params={"field": label, "names": ", ".join(addresses)},
        )
