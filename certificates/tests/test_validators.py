"""The input validators' promises: every message names its field, and the
paths and ports of a host. Names: test_validators_names.py; keys and secrets:
test_validators_keys.py. No database (validation.py).
"""

import pytest
from django.core.exceptions import ValidationError
from django.utils import translation
from django.utils.functional import Promise

from certificates import validators as v

from .validation import rejects


@pytest.fixture(autouse=True)
def english():
    # The assertions read the English text; the project defaults to Japanese
    # (LANGUAGE_CODE = "ja"), which would apply once the catalogue exists.
    with translation.override("en"):
        yield


# --------------------------------------------------------------------------- messages


BAD_INPUT_FOR_EVERY_VALIDATOR = [
    (v.normalize_domain_name, "foo..example.com", "Domain name"),
    (v.normalize_san_list, "foo..example.com", "Subject alternative names"),
    (v.validate_absolute_path, "etc/ssl", "Path"),
    (v.validate_port, "0", "Port"),
    (v.validate_certificate_chain_pem, "hello", "Certificate chain"),
    (v.validate_private_key_pem, "hello", "Private key"),
    (v.validate_ssh_private_key, "hello", "SSH private key"),
    (v.validate_ssh_public_key, "hello", "SSH public key"),
    (v.validate_tsig_secret, "!!", "TSIG secret"),
    (v.validate_tsig_algorithm, "hmac-sha3", "TSIG algorithm"),
]


@pytest.mark.parametrize(("func", "bad", "default_label"), BAD_INPUT_FOR_EVERY_VALIDATOR)
def test_every_message_starts_with_the_field_name_given_or_the_default(func, bad, default_label):
    with pytest.raises(ValidationError) as default:
        func(bad)
    assert default.value.messages[0].startswith(default_label)
    with pytest.raises(ValidationError) as custom:
        func(bad, label="Deploy target")
    assert custom.value.messages[0].startswith("Deploy target")


@pytest.mark.parametrize(("func", "bad", "default_label"), BAD_INPUT_FOR_EVERY_VALIDATOR)
def test_every_message_is_a_lazy_template_with_named_params_and_a_code(func, bad, default_label):
    # Translators must see the whole sentence with %(name)s placeholders,
    # never a string formatted before translation.
    with pytest.raises(ValidationError) as info:
        func(bad)
    for error in info.value.error_list:
        assert isinstance(error.message, Promise)
        assert "%(field)s" in str(error.message)
        assert error.params["field"] is not None
        assert error.code


def test_the_wildcard_challenge_message_is_a_lazy_template_too():
    with pytest.raises(ValidationError) as info:
        v.validate_wildcard_challenge(["*.example.com"], "http-01")
    assert isinstance(info.value.message, Promise)
    assert "%(names)s" in str(info.value.message)


# --------------------------------------------------------------------------- paths


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("/etc/ssl/private/example.key", "/etc/ssl/private/example.key"),
        ("/etc//ssl///certs/", "/etc/ssl/certs"),
        ("//srv/www", "/srv/www"),
        ("/etc/./ssl/.", "/etc/ssl"),
        ("  /srv/My Site/cert.pem \n", "/srv/My Site/cert.pem"),
        ("/srv/証明書", "/srv/証明書"),
    ],
)
def test_an_absolute_path_is_normalised(value, expected):
    assert v.validate_absolute_path(value) == expected


@pytest.mark.parametrize(
    ("value", "code"),
    [
        ("", "required"),
        ("etc/ssl", "not_absolute"),
        ("~/certs", "not_absolute"),
        ("./cert.pem", "not_absolute"),
        ("/etc/../shadow", "parent_reference"),
        ("/..", "parent_reference"),
        ("/", "root"),
        ("///", "root"),
        ("/./", "root"),
        ("/etc/ssl\x00.pem", "control_characters"),
        ("/etc/ssl\n/evil", "control_characters"),
        ("/etc/ss\rl", "control_characters"),
        ("/etc/s\tsl", "control_characters"),
        ("/etc/s\x7fsl", "control_characters"),
        ("/etc/s\u2028sl", "control_characters"),
    ],
)
def test_a_path_must_be_absolute_without_dot_dot_control_characters_or_just_root(value, code):
    rejects(v.validate_absolute_path, value, code=code, label="Key path")


def test_control_characters_are_shown_escaped_in_the_message():
    message = rejects(v.validate_absolute_path, "/etc/a\x00b", code="control_characters",
                      label="Key path")
    assert "\x00" not in message
    assert "/etc/a\\x00b" in message


def test_a_path_may_be_4096_bytes_long_and_no_longer():
    assert v.validate_absolute_path("/" + "a" * 4095) == "/" + "a" * 4095
    message = rejects(v.validate_absolute_path, "/" + "a" * 4096, code="too_long",
                      label="Key path")
    assert "at most 4096 bytes" in message
    # Bytes, not characters: 2000 three-byte characters exceed PATH_MAX.
    rejects(v.validate_absolute_path, "/" + "証" * 2000, code="too_long", label="Key path")


# --------------------------------------------------------------------------- ports


@pytest.mark.parametrize(("value", "expected"),
                         [(1, 1), (22, 22), (65535, 65535), ("443", 443), (" 8443 ", 8443)])
def test_a_port_is_a_whole_number_from_1_to_65535(value, expected):
    assert v.validate_port(value) == expected


@pytest.mark.parametrize(
    ("value", "code"),
    [
        (0, "port_out_of_range"),
        (65536, "port_out_of_range"),
        (-1, "port_out_of_range"),
        ("0", "port_out_of_range"),
        ("", "invalid_port"),
        (None, "invalid_port"),
        ("ssh", "invalid_port"),
        ("+443", "invalid_port"),
        ("4_43", "invalid_port"),
        ("٤٤٣", "invalid_port"),  # Arabic-Indic digits: int() accepts them
        (22.0, "invalid_port"),
        (True, "invalid_port"),
    ],
)
def test_anything_else_is_refused_as_a_port(value, code):
    message = rejects(v.validate_port, value, code=code, label="SSH port")
    assert "SSH port must be a whole number from 1 to 65535" in message
