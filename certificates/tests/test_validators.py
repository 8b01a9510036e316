"""The input validators' promises: each rule, and each message naming its field.

No database: these run standalone (``-p no:django``) and under pytest-django.
"""

import base64
import datetime
import functools
import shutil
import subprocess

import django
import paramiko
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from cryptography.x509.oid import NameOID
from django.conf import settings
from django.core.exceptions import ValidationError
from django.utils import translation
from django.utils.functional import Promise

from certificates import validators as v

if not settings.configured:  # standalone run; pytest-django configures the project's settings
    settings.configure(USE_I18N=True)
    django.setup()


@pytest.fixture(autouse=True)
def english():
    # The assertions read the English text; the project defaults to Japanese
    # (LANGUAGE_CODE = "ja"), which would apply once the catalogue exists.
    with translation.override("en"):
        yield


needs_ssh_keygen = pytest.mark.skipif(
    shutil.which("ssh-keygen") is None, reason="ssh-keygen (openssh-client) is not installed"
)

LABEL_RULE = (
    "is not a valid domain name: each label must be 1–63 letters, digits or hyphens, "
    "not starting or ending with a hyphen."
)


def rejects(func, value, *, code, label=None, **kwargs) -> str:
    """Call ``func``, expect exactly one error with ``code``; return its message.

    With ``label``, the field name is passed in and must start the message.
    """
    if label is not None:
        kwargs["label"] = label
    with pytest.raises(ValidationError) as info:
        func(value, **kwargs)
    assert [error.code for error in info.value.error_list] == [code]
    (message,) = info.value.messages
    if label is not None:
        assert message.startswith(label), message
    return message


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


# --------------------------------------------------------------------------- domain names


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("example.com", "example.com"),
        ("  WWW.Example.COM  ", "www.example.com"),
        ("www.example.com.", "www.example.com"),
        ("a-b.c0.example", "a-b.c0.example"),
        ("123.example.com", "123.example.com"),
    ],
)
def test_a_domain_name_is_stripped_lower_cased_and_loses_its_trailing_dot(value, expected):
    assert v.normalize_domain_name(value) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("bücher.example", "xn--bcher-kva.example"),
        ("Bücher.Example", "xn--bcher-kva.example"),
        ("日本語.jp", "xn--wgv71a119e.jp"),
        ("日本語。jp", "xn--wgv71a119e.jp"),  # ideographic full stop, as typed with an IME
        ("ｅｘａｍｐｌｅ.com", "example.com"),  # full-width letters
        ("xn--bcher-kva.example", "xn--bcher-kva.example"),
        ("*.bücher.example", "*.xn--bcher-kva.example"),
    ],
)
def test_internationalised_names_are_converted_to_a_labels(value, expected):
    assert v.normalize_domain_name(value) == expected


def test_a_wildcard_is_allowed_only_as_the_whole_leftmost_label():
    assert v.normalize_domain_name("*.Example.com") == "*.example.com"
    for value in ["a.*.example.com", "*a.example.com", "a*.example.com", "*.*.example.com"]:
        message = rejects(v.normalize_domain_name, value, code="invalid_wildcard",
                          label="Common name")
        assert "only as the whole leftmost label" in message


@pytest.mark.parametrize("value", ["*", "*.com", "*.com."])
def test_a_wildcard_must_be_followed_by_at_least_two_labels(value):
    message = rejects(v.normalize_domain_name, value, code="wildcard_too_broad",
                      label="Common name")
    assert "at least two labels" in message


def test_a_wildcard_is_refused_where_wildcards_are_not_allowed():
    message = rejects(v.normalize_domain_name, "*.example.com", code="wildcard_not_allowed",
                      label="DNS server", allow_wildcard=False)
    assert "must not be a wildcard" in message
    assert v.normalize_domain_name("ns1.example.com", allow_wildcard=False) == "ns1.example.com"


@pytest.mark.parametrize(
    "value",
    [
        "foo..example.com",
        ".example.com",
        "example.com..",
        "-foo.example.com",
        "foo-.example.com",
        "foo_bar.example.com",
        "exa mple.com",
        "foo/bar.example.com",
        "a" * 64 + ".example.com",
    ],
)
def test_each_label_must_be_1_to_63_letters_digits_or_hyphens_not_at_either_end(value):
    message = rejects(v.normalize_domain_name, value, code="invalid_label", label="Common name")
    assert message == f"Common name “{value}” {LABEL_RULE}"


def test_a_63_octet_label_and_a_253_character_name_are_accepted_and_254_is_not():
    assert v.normalize_domain_name("a" * 63 + ".example")
    longest = ".".join(["a" * 63, "b" * 63, "c" * 63, "d" * 57, "com"])
    assert len(longest) == 253
    assert v.normalize_domain_name(longest) == longest
    too_long = ".".join(["a" * 63, "b" * 63, "c" * 63, "d" * 58, "com"])
    message = rejects(v.normalize_domain_name, too_long, code="too_long",
                      label="Common name")
    assert "at most 253 characters" in message


def test_the_length_limit_applies_to_the_converted_a_label_form():
    # 50 characters typed, but each label grows to its xn-- form.
    name = ".".join(["日本語日本語日本語日本語"] * 12) + ".jp"
    assert len(name) < 253
    rejects(v.normalize_domain_name, name, code="too_long", label="Common name")


def test_huge_input_is_refused_as_too_long_and_not_echoed_in_full():
    message = rejects(v.normalize_domain_name, "a." * 10_000 + "com", code="too_long",
                      label="Common name")
    assert len(message) < 300


def test_a_name_needs_at_least_two_labels():
    message = rejects(v.normalize_domain_name, "localhost", code="not_fqdn", label="Common name")
    assert "at least two labels" in message


def test_the_top_level_domain_must_not_be_all_digits():
    message = rejects(v.normalize_domain_name, "example.123", code="numeric_tld",
                      label="Common name")
    assert "must not be all digits" in message


@pytest.mark.parametrize(
    "value", ["192.0.2.1", "192.0.2.1.", "2001:db8::1", "[2001:db8::1]", "10.1", "010.0.0.1"]
)
def test_an_ip_address_is_refused_with_its_own_message(value):
    message = rejects(v.normalize_domain_name, value, code="ip_address", label="Common name")
    assert "is an IP address" in message
    assert "DNS names only" in message


def test_hyphens_in_the_third_and_fourth_positions_are_reserved_for_xn_labels():
    message = rejects(v.normalize_domain_name, "ab--cd.example", code="reserved_label",
                      label="Common name")
    assert "“ab--cd”" in message


@pytest.mark.parametrize("value", ["☃.example", "💩.example", "xn--ls8h.example", "xn--a.example"])
def test_characters_idna_2008_disallows_are_refused(value):
    message = rejects(v.normalize_domain_name, value, code="invalid_idn", label="Common name")
    assert "internationalised" in message


@pytest.mark.parametrize("value", ["", "   ", None])
def test_a_domain_name_is_required(value):
    rejects(v.normalize_domain_name, value, code="required", label="Common name")


@pytest.mark.parametrize(
    ("name", "expected"),
    [("*.example.com", True), ("*", True), ("example.com", False),
     ("a.*.example.com", False), ("", False), (None, False)],
)
def test_is_wildcard_looks_at_the_leftmost_label_only(name, expected):
    assert v.is_wildcard(name) is expected


# --------------------------------------------------------------------------- SAN lists


def test_sans_may_be_a_list_or_text_separated_by_commas_whitespace_or_newlines():
    text = "a.example, b.example\nc.example\t d.example,,\r\n"
    expected = ["a.example", "b.example", "c.example", "d.example"]
    assert v.normalize_san_list(text) == expected
    assert v.normalize_san_list(["a.example", " b.example ", "", "c.example d.example"]) == expected


def test_the_common_name_comes_first_exactly_once_even_if_listed_again():
    sans = ["b.example", "WWW.Example.com.", "a.example"]
    assert v.normalize_san_list(sans, common_name="www.example.com") == [
        "www.example.com", "b.example", "a.example"
    ]
    assert v.normalize_san_list("", common_name="Bücher.example") == ["xn--bcher-kva.example"]
    assert v.normalize_san_list(None) == []


def test_every_duplicate_and_every_invalid_entry_is_reported_in_one_error():
    sans = ["Bücher.example", "a.example", "xn--bcher-kva.example", "bad..example",
            "A.example.", "1.2.3.4"]
    with pytest.raises(ValidationError) as info:
        v.normalize_san_list(sans, label="SANs")
    codes = sorted(error.code for error in info.value.error_list)
    assert codes == ["duplicate", "duplicate", "invalid_label", "ip_address"]
    messages = info.value.messages
    assert all(message.startswith("SANs") for message in messages)
    bucher = next(m for m in messages if "xn--bcher-kva.example” more than once" in m)
    assert "“Bücher.example”" in bucher and "“xn--bcher-kva.example”" in bucher
    assert any("“a.example” more than once" in m for m in messages)


def test_an_invalid_common_name_is_reported_under_its_own_name():
    with pytest.raises(ValidationError) as info:
        v.normalize_san_list(["a.example"], common_name="bad..example")
    assert info.value.messages[0].startswith("Common name")


def test_a_certificate_covers_at_most_100_names_counting_the_common_name():
    names = [f"h{i}.example" for i in range(99)]
    assert len(v.normalize_san_list(names, common_name="www.example")) == 100
    message = rejects(v.normalize_san_list, names + ["h99.example"], code="too_many_names",
                      label="SANs", common_name="www.example")
    assert "at most 100 names" in message and "101" in message


def test_a_huge_san_list_is_refused_before_any_name_is_examined():
    rejects(v.normalize_san_list, "x " * 5000, code="too_many_names", label="SANs")


# --------------------------------------------------------------------------- challenge


def test_a_wildcard_name_needs_the_dns_01_challenge():
    names = ["example.com", "*.example.com", "*.shop.example.com"]
    v.validate_wildcard_challenge(names, "dns-01")
    v.validate_wildcard_challenge(["example.com"], "http-01")
    with pytest.raises(ValidationError) as info:
        v.validate_wildcard_challenge(names, "http-01")
    assert info.value.code == "wildcard_needs_dns01"
    (message,) = info.value.messages
    assert message.startswith("Challenge type")
    assert "*.example.com, *.shop.example.com" in message
    assert "example.com," not in message.replace("*.example.com,", "")


def test_an_unknown_challenge_type_is_refused():
    with pytest.raises(ValidationError) as info:
        v.validate_wildcard_challenge(["example.com"], "tls-alpn-01")
    assert info.value.code == "invalid_challenge"
    assert "http-01, dns-01" in info.value.messages[0]


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


# --------------------------------------------------------------------------- PEM


@functools.cache
def tls_key(kind: str):
    return {
        "rsa2048": lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048),
        "rsa1024": lambda: rsa.generate_private_key(public_exponent=65537, key_size=1024),
        "p256": lambda: ec.generate_private_key(ec.SECP256R1()),
        "p384": lambda: ec.generate_private_key(ec.SECP384R1()),
        "p521": lambda: ec.generate_private_key(ec.SECP521R1()),
        "ed25519": ed25519.Ed25519PrivateKey.generate,
        "ed448": ed448.Ed448PrivateKey.generate,
    }[kind]()


def pem_key(kind: str, fmt=serialization.PrivateFormat.PKCS8, encryption=None) -> str:
    return tls_key(kind).private_bytes(
        serialization.Encoding.PEM, fmt, encryption or serialization.NoEncryption()
    ).decode()


def pem_certificate(common_name: str) -> str:
    key = tls_key("p256")
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=90))
        .sign(key, hashes.SHA256())
    )
    return certificate.public_bytes(serialization.Encoding.PEM).decode()


def test_a_certificate_chain_is_returned_in_the_order_given():
    chain = pem_certificate("leaf.example") + "\n" + pem_certificate("Test Intermediate")
    certificates = v.validate_certificate_chain_pem(chain)
    assert [c.subject.rfc4514_string() for c in certificates] == [
        "CN=leaf.example", "CN=Test Intermediate"
    ]


def test_a_chain_pasted_with_crlf_indentation_and_openssl_comments_is_accepted():
    pem = pem_certificate("leaf.example")
    pasted = "subject=CN=leaf.example\r\n" + "\r\n".join("   " + line for line in pem.splitlines())
    assert len(v.validate_certificate_chain_pem(pasted)) == 1
    assert len(v.validate_certificate_chain_pem(pem.encode())) == 1


BROKEN_CERTIFICATE = (
    "-----BEGIN CERTIFICATE-----\nTm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----"
)


@pytest.mark.parametrize(
    ("make_value", "code"),
    [
        (lambda: "", "no_certificate"),
        (lambda: "just some text", "no_certificate"),
        (lambda: BROKEN_CERTIFICATE, "invalid_certificate"),
        (lambda: pem_certificate("a.example") + BROKEN_CERTIFICATE, "invalid_certificate"),
        (lambda: pem_certificate("a.example")[:-30], "incomplete_pem"),
        (lambda: pem_certificate("a.example") + pem_key("p256"), "contains_private_key"),
        (lambda: pem_certificate("a.example")
         + "-----BEGIN X509 CRL-----\nAAAA\n-----END X509 CRL-----\n", "unexpected_pem_block"),
    ],
)
def test_a_certificate_chain_needs_at_least_one_block_and_every_block_must_parse(make_value, code):
    message = rejects(v.validate_certificate_chain_pem, make_value(), code=code,
                      label="Issued chain")
    assert "PEM text beginning with -----BEGIN CERTIFICATE-----" in message


def test_the_message_for_a_broken_block_says_which_one():
    value = pem_certificate("a.example") + BROKEN_CERTIFICATE
    message = rejects(v.validate_certificate_chain_pem, value, code="invalid_certificate",
                      label="Issued chain")
    assert "certificate 2" in message


@pytest.mark.parametrize(
    ("kind", "fmt", "key_class"),
    [
        ("rsa2048", serialization.PrivateFormat.PKCS8, rsa.RSAPrivateKey),
        ("rsa2048", serialization.PrivateFormat.TraditionalOpenSSL, rsa.RSAPrivateKey),
        ("p256", serialization.PrivateFormat.TraditionalOpenSSL, ec.EllipticCurvePrivateKey),
        ("p384", serialization.PrivateFormat.PKCS8, ec.EllipticCurvePrivateKey),
        ("ed25519", serialization.PrivateFormat.PKCS8, ed25519.Ed25519PrivateKey),
    ],
)
def test_a_private_key_may_be_rsa_2048_plus_ec_p256_p384_or_ed25519(kind, fmt, key_class):
    key = v.validate_private_key_pem(pem_key(kind, fmt))
    assert isinstance(key, key_class)
    assert key.public_key() == tls_key(kind).public_key()


@pytest.mark.parametrize(("kind", "shown"),
                         [("rsa1024", "RSA 1024-bit"), ("p521", "secp521r1"), ("ed448", "Ed448")])
def test_other_private_key_types_are_refused_with_the_allowed_list(kind, shown):
    message = rejects(v.validate_private_key_pem, pem_key(kind), code="unsupported_key_type",
                      label="Certificate key")
    assert shown in message
    assert "RSA with at least 2048 bits, ECDSA on P-256 or P-384, or Ed25519" in message


@pytest.mark.parametrize("fmt", [serialization.PrivateFormat.PKCS8,
                                 serialization.PrivateFormat.TraditionalOpenSSL])
def test_an_encrypted_private_key_is_refused(fmt):
    pem = pem_key("p256", fmt, serialization.BestAvailableEncryption(b"secret-pw"))
    message = rejects(v.validate_private_key_pem, pem, code="encrypted", label="Certificate key")
    assert "must not be protected by a passphrase" in message


@pytest.mark.parametrize(
    ("make_value", "code"),
    [
        (lambda: "", "not_pem_private_key"),
        (lambda: pem_certificate("a.example"), "not_pem_private_key"),
        (lambda: pem_key("p256") + pem_key("p384"), "not_pem_private_key"),
        (lambda: pem_key("p256") + pem_certificate("a.example"), "not_pem_private_key"),
        (lambda: pem_key("ed25519", serialization.PrivateFormat.OpenSSH), "not_pem_private_key"),
        (lambda: pem_key("p256")[:-40], "not_pem_private_key"),
        (lambda: "-----BEGIN PRIVATE KEY-----\nTm90IGEga2V5\n-----END PRIVATE KEY-----",
         "invalid_private_key"),
    ],
)
def test_a_private_key_must_be_exactly_one_readable_pem_key(make_value, code):
    message = rejects(v.validate_private_key_pem, make_value(), code=code,
                      label="Certificate key")
    if code == "not_pem_private_key":
        assert "-----BEGIN PRIVATE KEY-----" in message


def test_key_material_is_never_echoed_in_a_message():
    pem = pem_key("rsa1024")
    message = rejects(v.validate_private_key_pem, pem, code="unsupported_key_type",
                      label="Certificate key")
    assert not any(line in message for line in pem.splitlines()[1:-1])


# --------------------------------------------------------------------------- SSH keys


@pytest.fixture(scope="module")
def ssh_keys(tmp_path_factory):
    """Keys made by ssh-keygen itself: {name: (private key path, .pub path)}."""
    if shutil.which("ssh-keygen") is None:
        pytest.skip("ssh-keygen (openssh-client) is not installed")
    directory = tmp_path_factory.mktemp("ssh-keys")
    specs = {
        "ed25519": ["-t", "ed25519"],
        "ecdsa": ["-t", "ecdsa", "-b", "384"],
        "rsa": ["-t", "rsa", "-b", "2048"],
        "rsa-pem": ["-t", "rsa", "-b", "2048", "-m", "PEM"],
        "ecdsa-pem": ["-t", "ecdsa", "-m", "PEM"],
    }
    keys = {}
    for name, args in specs.items():
        path = directory / name
        subprocess.run(["ssh-keygen", "-q", *args, "-N", "", "-C", f"{name}@test", "-f", path],
                       check=True)
        keys[name] = (path, path.with_name(name + ".pub"))
    return keys


@needs_ssh_keygen
@pytest.mark.parametrize(
    ("name", "key_class"),
    [("ed25519", paramiko.Ed25519Key), ("ecdsa", paramiko.ECDSAKey), ("rsa", paramiko.RSAKey),
     ("rsa-pem", paramiko.RSAKey), ("ecdsa-pem", paramiko.ECDSAKey)],
)
def test_an_ssh_private_key_in_openssh_or_pem_format_becomes_a_paramiko_key(
    ssh_keys, name, key_class
):
    private_path, public_path = ssh_keys[name]
    key = v.validate_ssh_private_key(private_path.read_text())
    assert isinstance(key, key_class)
    # The very key ssh-keygen made: its public half matches the .pub file.
    assert key.get_base64() == public_path.read_text().split()[1]


def test_an_ed25519_key_in_pkcs8_pem_is_accepted_too():
    key = v.validate_ssh_private_key(pem_key("ed25519"))
    assert isinstance(key, paramiko.Ed25519Key)


@needs_ssh_keygen
@pytest.mark.parametrize("extra", [[], ["-m", "PEM", "-t", "rsa", "-b", "2048"]])
def test_an_ssh_private_key_protected_by_a_passphrase_is_refused(tmp_path, extra):
    path = tmp_path / "key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", *extra, "-N", "secret-pw", "-f", path],
                   check=True)
    message = rejects(v.validate_ssh_private_key, path.read_text(), code="encrypted",
                      label="SSH login key")
    assert "must not be protected by a passphrase" in message


@needs_ssh_keygen
def test_a_public_key_pasted_as_the_private_key_is_refused_with_its_own_message(ssh_keys):
    message = rejects(v.validate_ssh_private_key, ssh_keys["ed25519"][1].read_text(),
                      code="public_key_given", label="SSH login key")
    assert "looks like a public key" in message


@pytest.mark.parametrize(
    ("make_value", "code"),
    [
        (lambda: "", "not_ssh_private_key"),
        (lambda: pem_certificate("a.example"), "not_ssh_private_key"),
        (lambda: pem_key("ed25519", serialization.PrivateFormat.OpenSSH)[:-50],
         "not_ssh_private_key"),
        (lambda: "-----BEGIN OPENSSH PRIVATE KEY-----\nTm90IGEga2V5\n"
                 "-----END OPENSSH PRIVATE KEY-----", "not_ssh_private_key"),
        (lambda: "PuTTY-User-Key-File-3: ssh-ed25519\nEncryption: none\n", "putty_format"),
        (lambda: pem_key("rsa1024", serialization.PrivateFormat.OpenSSH),
         "unsupported_key_type"),
        (lambda: pem_key("ed25519", serialization.PrivateFormat.OpenSSH,
                         serialization.BestAvailableEncryption(b"secret-pw")), "encrypted"),
    ],
)
def test_anything_but_one_unencrypted_supported_ssh_private_key_is_refused(make_value, code):
    message = rejects(v.validate_ssh_private_key, make_value(), code=code, label="SSH login key")
    if code == "unsupported_key_type":
        assert "Ed25519, ECDSA (nistp256, nistp384 or nistp521) or RSA with at least" in message


@needs_ssh_keygen
@pytest.mark.parametrize("name", ["ed25519", "ecdsa", "rsa"])
def test_a_public_key_line_yields_its_type_and_base64(ssh_keys, name):
    line = ssh_keys[name][1].read_text()
    key_type, encoded, _comment = line.split()
    assert v.validate_ssh_public_key(line) == (key_type, encoded)
    assert v.validate_ssh_public_key(f"{key_type} {encoded}") == (key_type, encoded)
    # ssh-keyscan / known_hosts form, with a comment line in front.
    keyscan = f"# host.example:22 SSH-2.0-OpenSSH_9.2\nhost.example,192.0.2.1 {key_type} {encoded}"
    assert v.validate_ssh_public_key(keyscan) == (key_type, encoded)


@needs_ssh_keygen
@pytest.mark.parametrize("name", ["ed25519", "ecdsa", "rsa"])
def test_the_sha256_fingerprint_is_exactly_what_ssh_keygen_prints(ssh_keys, name):
    public_path = ssh_keys[name][1]
    printed = subprocess.run(["ssh-keygen", "-lf", public_path], check=True,
                             capture_output=True, text=True).stdout.split()[1]
    assert printed.startswith("SHA256:") and not printed.endswith("=")
    assert v.ssh_fingerprint_sha256(public_path.read_text()) == printed


@needs_ssh_keygen
def test_a_public_key_line_must_be_whole_consistent_and_of_a_supported_type(ssh_keys):
    ed_type, ed_data = ssh_keys["ed25519"][1].read_text().split()[:2]
    rsa_line = ssh_keys["rsa"][1].read_text()
    blob = base64.b64decode(ed_data)
    cases = [
        ("", "invalid_format"),
        ("ssh-ed25519", "invalid_format"),
        ("not a key at all", "invalid_format"),
        (f"{ed_type} {ed_data}\n{rsa_line}", "invalid_format"),
        (f"@cert-authority *.example {ed_type} {ed_data}", "invalid_format"),
        (f"ssh-dss {ed_data}", "unsupported_key_type"),
        (f"ssh-rsa {ed_data}", "key_type_mismatch"),
        (f"{ed_type} {ed_data[:-4]}", "invalid_key_data"),
        (f"{ed_type} AAAA!!!!", "invalid_key_data"),
        (f"{ed_type} {base64.b64encode(blob[:-1]).decode()}", "invalid_key_data"),
    ]
    for value, code in cases:
        message = rejects(v.validate_ssh_public_key, value, code=code, label="SSH host key")
        if code == "unsupported_key_type":
            assert "ssh-ed25519, ecdsa-sha2-nistp256" in message
        if code == "key_type_mismatch":
            assert "“ssh-rsa”" in message and "“ssh-ed25519”" in message


def test_a_fingerprint_of_an_invalid_line_raises_a_validation_error():
    with pytest.raises(ValidationError):
        v.ssh_fingerprint_sha256("ssh-ed25519 AAAA")


# --------------------------------------------------------------------------- TSIG


def test_a_tsig_secret_is_base64_of_at_least_16_bytes_returned_without_whitespace():
    secret = base64.b64encode(bytes(range(32))).decode()
    assert v.validate_tsig_secret(secret) == secret
    assert v.validate_tsig_secret(f"  {secret[:20]}\n {secret[20:]} ") == secret
    assert v.validate_tsig_secret(base64.b64encode(b"x" * 16).decode())


@pytest.mark.parametrize(
    ("value", "code"),
    [
        ("", "too_short"),
        (base64.b64encode(b"x" * 15).decode(), "too_short"),
        ("not base64!", "invalid_base64"),
        ("c2VjcmV0", "too_short"),
        ("c2VjcmV0c2VjcmV0", "too_short"),
        ("c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0=", "invalid_base64"),  # stray padding
        ("c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV", "invalid_base64"),  # missing padding
        ("秘密秘密秘密秘密秘密秘密秘密秘密", "invalid_base64"),
    ],
)
def test_a_tsig_secret_that_is_not_base64_or_too_short_is_refused(value, code):
    message = rejects(v.validate_tsig_secret, value, code=code, label="TSIG secret")
    assert "at least 16 bytes" in message
    if value:
        assert value not in message  # secrets are not echoed


@pytest.mark.parametrize(
    ("value", "expected"),
    [*((a, a) for a in v.TSIG_ALGORITHMS),
     (" HMAC-SHA256. ", "hmac-sha256"), ("hmac-md5.sig-alg.reg.int.", "hmac-md5")],
)
def test_a_tsig_algorithm_is_one_of_the_offered_names(value, expected):
    assert v.validate_tsig_algorithm(value) == expected


@pytest.mark.parametrize("value", ["", "hmac-sha3-256", "sha256", "gss-tsig"])
def test_other_tsig_algorithms_are_refused_with_the_list_of_allowed_ones(value):
    message = rejects(v.validate_tsig_algorithm, value, code="unsupported_algorithm",
                      label="TSIG algorithm")
    assert ", ".join(v.TSIG_ALGORITHMS) in message


def test_tsig_algorithms_are_offered_preferred_first():
    assert v.TSIG_ALGORITHMS == (
        "hmac-sha256", "hmac-sha384", "hmac-sha512", "hmac-sha224", "hmac-sha1", "hmac-md5"
    )
