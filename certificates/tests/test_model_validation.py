"""Bad input on the models gets a message on the right field; nothing stored is lost."""

import pytest
from django.core.exceptions import ValidationError
from django.utils import translation

from certificates.models import Certificate, Challenge, DNSCredential, DNSKind, TargetHost
from certificates.tests.factories import ca_account, host
from certificates.tests.pki import ssh_keypair

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def english():
    # Messages are asserted in English here; test_i18n.py checks the Japanese.
    with translation.override("en"):
        yield


@pytest.fixture
def ca(organization):
    return ca_account(organization)


def errors_of(obj):
    with pytest.raises(ValidationError) as info:
        obj.full_clean()
    return info.value.message_dict


def test_a_wildcard_needs_dns01(organization, ca):
    cert = Certificate(
        organization=organization,
        ca_account=ca,
        common_name="*.msen.jp",
        challenge=Challenge.HTTP_01,
    )
    errors = errors_of(cert)
    assert "challenge" in errors
    assert "*.msen.jp" in " ".join(errors["challenge"])
    assert "dns-01" in " ".join(errors["challenge"]).lower()


def test_dns01_needs_a_dns_credential(organization, ca):
    cert = Certificate(
        organization=organization,
        ca_account=ca,
        common_name="*.msen.jp",
        challenge=Challenge.DNS_01,
    )
    errors = errors_of(cert)
    assert "DNS credentials" in errors["dns_credentials"][0]


def test_a_dns_credential_of_another_organisation_is_refused(organization, other_organization,
                                                             ca):
    cert = Certificate(organization=organization, ca_account=ca, common_name="*.msen.jp",
                       challenge=Challenge.DNS_01)
    cert.chosen_dns_credentials = [rfc2136(other_organization)]
    assert "same organisation" in errors_of(cert)["dns_credentials"][0]


def test_each_missing_rfc2136_field_says_what_it_is_for(organization):
    # Only the secret signs the update: the server receives it, the key name names the key.
    credential = DNSCredential(organization=organization, name="bind", kind=DNSKind.RFC2136,
                               zones=["msen.jp"])
    errors = errors_of(credential)
    assert "sent to it" in errors["server"][0]
    assert "names the key" in errors["tsig_key_name"][0]
    assert "signed with it" in errors["tsig_secret"][0]
    with translation.override("ja"):
        errors = errors_of(credential)
    assert "署名" not in errors["server"][0] and "送信" in errors["server"][0]
    assert "この値で署名" not in errors["tsig_key_name"][0]
    assert "署名" in errors["tsig_secret"][0]


def test_a_valid_wildcard_certificate_is_normalised_with_its_base_name(organization, ca):
    cert = Certificate(
        organization=organization,
        ca_account=ca,
        common_name="*.Msen.JP.",
        sans=["msen.jp", "*.msen.jp"],
        challenge=Challenge.DNS_01,
    )
    cert.chosen_dns_credentials = [rfc2136(organization)]
    cert.full_clean()
    assert cert.common_name == "*.msen.jp"
    assert cert.sans == ["*.msen.jp", "msen.jp"]


def test_an_idn_common_name_is_stored_as_its_a_label(organization, ca):
    cert = Certificate(organization=organization, ca_account=ca, common_name="日本語.jp")
    cert.full_clean()
    assert cert.common_name == "xn--wgv71a119e.jp"


def test_duplicate_sans_are_named(organization, ca):
    cert = Certificate(
        organization=organization,
        ca_account=ca,
        common_name="www.example.test",
        sans=["a.example.test", "A.example.test"],
    )
    errors = errors_of(cert)
    assert "a.example.test" in " ".join(errors["sans"])


def test_a_dns_port_outside_1_to_65535_is_refused(organization):
    credential = DNSCredential(organization=organization, name="ns", zones=["msen.jp"],
                               server="192.0.2.53", tsig_key_name="k", port=70000)
    assert "65535" in " ".join(errors_of(credential)["port"])


def test_a_ca_account_of_another_organisation_is_refused(organization, other_organization):
    foreign = ca_account(other_organization)
    cert = Certificate(
        organization=organization, ca_account=foreign, common_name="www.example.test"
    )
    assert "ca_account" in errors_of(cert)


def test_host_paths_must_be_absolute_and_each_error_names_its_field(organization, tmp_path):
    login_key, _ = ssh_keypair(tmp_path)
    target = TargetHost(
        organization=organization,
        name="web",
        address="127.0.0.2",
        ssh_user="root",
        login_key=login_key,
        private_key_path="ssl/site.key",
        certificate_path="/etc/ssl/../site.crt",
        backup_dir="/var/backups",
        ssh_port=0,
    )
    errors = errors_of(target)
    assert "Private key path" in errors["private_key_path"][0]
    assert "Certificate path" in errors["certificate_path"][0]
    assert "65535" in errors["ssh_port"][0]


def test_a_login_key_that_does_not_parse_is_refused(organization, tmp_path):
    target = TargetHost(
        organization=organization,
        name="web",
        address="127.0.0.2",
        ssh_user="root",
        login_key="not a key",
        private_key_path="/k",
        certificate_path="/c",
        backup_dir="/b",
    )
    assert "SSH login key" in errors_of(target)["login_key"][0]


def test_a_pinned_host_key_yields_its_ssh_keygen_fingerprint(organization, tmp_path):
    import subprocess

    login_key, host_public = ssh_keypair(tmp_path, "host")
    target = host(organization, login_key=login_key, host_key=host_public)
    expected = subprocess.run(
        ["ssh-keygen", "-lf", str(tmp_path / "host.pub")],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()[1]
    assert target.host_key_fingerprint == expected


def test_a_charge_must_be_negative_and_a_top_up_positive(organization):
    from decimal import Decimal

    from django.db import IntegrityError, transaction

    from certificates.models import DepositEntry

    account = ca_account(organization)
    for kind, amount in [("charge", Decimal("100")), ("topup", Decimal("-100"))]:
        with pytest.raises(IntegrityError), transaction.atomic():
            DepositEntry.objects.create(
                ca_account=account, kind=kind, amount=amount, reference=f"{kind}-bad"
            )
    DepositEntry.objects.create(
        ca_account=account, kind="topup", amount=Decimal("5000"), reference="t1"
    )
    DepositEntry.objects.create(
        ca_account=account, kind="charge", amount=Decimal("-1100"), reference="c1"
    )
    assert account.balance() == Decimal("3900")


def test_the_same_reference_cannot_move_money_twice(organization):
    from decimal import Decimal

    from django.db import IntegrityError

    from certificates.models import DepositEntry

    account = ca_account(organization)
    DepositEntry.objects.create(
        ca_account=account, kind="charge", amount=Decimal("-1100"), reference="version-1"
    )
    with pytest.raises(IntegrityError):
        DepositEntry.objects.create(
            ca_account=account, kind="charge", amount=Decimal("-1100"), reference="version-1"
        )


def rfc2136(organization, **fields):
    credential = DNSCredential(organization=organization, name="ns", zones=["Msen.JP."],
                               **{"server": "192.0.2.53", "tsig_key_name": "k", **fields})
    credential.secret_values = {"tsig_secret": "dHNpZy1zZWNyZXQtdmFsdWUtMTIzNA=="}
    return credential


@pytest.mark.parametrize(
    "server,stored",
    [("127.0.0.1", "127.0.0.1"), ("NS1.Example.test", "ns1.example.test"), ("::1", "::1")],
)
def test_the_dns_server_is_an_address_or_a_host_name(organization, server, stored):
    credential = rfc2136(organization, server=server)
    credential.full_clean()
    assert credential.server == stored and credential.zones == ["msen.jp"]


def test_a_dns_server_that_is_neither_address_nor_name_is_refused(organization):
    assert "DNS server" in errors_of(rfc2136(organization, server="ns_1!"))["server"][0]


def test_each_missing_rfc2136_field_is_named(organization):
    credential = DNSCredential(organization=organization, name="ns", zones=[])
    errors = errors_of(credential)
    assert {"zones", "server", "tsig_key_name", "tsig_secret"} <= set(errors)
    assert "TSIG secret" in errors["tsig_secret"][0]


def test_a_provider_secret_given_as_a_plain_option_is_refused(organization):
    credential = DNSCredential(organization=organization, name="p", zones=["msen.jp"],
                               kind=DNSKind.LEXICON, provider="powerdns",
                               options={"auth_token": "t", "pdns_server": "https://ns.msen.jp"})
    assert "secret" in errors_of(credential)["options"][0]
    credential.options = {"pdns_server": "/run/pdns.socket"}
    assert "file path" in errors_of(credential)["options"][0]
    credential.options, credential.provider = {}, "no-such-provider"
    assert "Provider" in errors_of(credential)["provider"][0]


def test_a_second_certificate_on_a_host_needs_name_in_its_file_paths(organization, ca, tmp_path):
    from certificates.models import Deployment

    login_key, _ = ssh_keypair(tmp_path)
    target = host(organization, login_key=login_key)
    first = Certificate.objects.create(organization=organization, ca_account=ca,
                                       common_name="a.example.test")
    second = Certificate.objects.create(organization=organization, ca_account=ca,
                                        common_name="*.b.example.test")
    Deployment(certificate=first, host=target).full_clean()
    Deployment.objects.create(certificate=first, host=target)

    errors = errors_of(Deployment(certificate=second, host=target))
    assert "{name}" in errors["host"][0]

    for field in ("private_key_path", "certificate_path", "ca_bundle_path", "fullchain_path"):
        setattr(target, field, f"/etc/nginx/ssl/{{name}}.{field}")
    target.full_clean()
    target.save()
    Deployment(certificate=second, host=target).full_clean()
    assert target.file_paths(second)["private_key_path"] == (
        "/etc/nginx/ssl/wildcard.b.example.test.private_key_path")
    assert target.file_paths(first)["private_key_path"] != (
        target.file_paths(second)["private_key_path"])


def test_only_the_name_placeholder_is_allowed_in_paths(organization, tmp_path):
    login_key, _ = ssh_keypair(tmp_path)
    target = TargetHost(organization=organization, name="web", address="127.0.0.2",
                        ssh_user="root", login_key=login_key, private_key_path="/k/{host}.key",
                        certificate_path="/c/{name}.crt", backup_dir="/b")
    errors = errors_of(target)
    assert "{name}" in errors["private_key_path"][0]
    assert "certificate_path" not in errors


def test_every_run_status_is_either_open_or_final():
    from certificates.models import RenewalRun

    assert set(RenewalRun.OPEN) | set(RenewalRun.FINAL) == set(RenewalRun.Status)
    assert not set(RenewalRun.OPEN) & set(RenewalRun.FINAL)
    assert set(RenewalRun.UNSUCCESSFUL) == set(RenewalRun.FINAL) - {RenewalRun.Status.SUCCEEDED}
