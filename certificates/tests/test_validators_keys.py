"""The validators of keys and secrets: certificate chains and private keys in PEM,
SSH keys and fingerprints, TSIG secrets and algorithms. No database (validation.py).
"""

import base64
import functools
import shutil
import subprocess

import paramiko
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from django.core.exceptions import ValidationError
from django.utils import translation

from certificates import validators as v

from . import pki
from .validation import rejects


@pytest.fixture(autouse=True)
def english():
    # The assertions read the English text; the project defaults to Japanese
    # (LANGUAGE_CODE = "ja"), which would apply once the catalogue exists.
    with translation.override("en"):
        yield


needs_ssh_keygen = pytest.mark.skipif(
    shutil.which("ssh-keygen") is None, reason="ssh-keygen (openssh-client) is not installed"
)


# --------------------------------------------------------------------------- PEM


# One key per kind: a test compares the key a validator read with the one it gave.
tls_key = functools.cache(pki.private_key)


def pem_key(kind: str, fmt=serialization.PrivateFormat.PKCS8, encryption=None) -> str:
    return pki.key_pem(tls_key(kind), fmt, encryption)


def pem_certificate(common_name: str) -> str:
    key = tls_key("p256")
    return pki.cert_pem(pki.issue(common_name, key.public_key(), key))


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
