"""The validators of the names a certificate covers: domain names, SAN lists and
the challenge a wildcard needs. No database (validation.py).
"""

import pytest
from django.core.exceptions import ValidationError
from django.utils import translation

from certificates import validators as v

from .validation import rejects


@pytest.fixture(autouse=True)
def english():
    # The assertions read the English text; the project defaults to Japanese
    # (LANGUAGE_CODE = "ja"), which would apply once the catalogue exists.
    with translation.override("en"):
        yield


LABEL_RULE = (
    "is not a valid domain name: each label must be 1–63 letters, digits or hyphens, "
    "not starting or ending with a hyphen."
)


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
