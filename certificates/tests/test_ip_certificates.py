"""IP-address certificates (RFC 8738): the names validated and normalised, and
one issued by Pebble over HTTP-01 through the host, deployed and served to a
client that connects by address (no SNI)."""

import hashlib
import socket
import ssl
from decimal import Decimal

import pytest
from cryptography import x509
from django.core.exceptions import ValidationError

from certificates import validators as v
from certificates.hosts.deployment import sni_name
from certificates.models import Certificate, Challenge, Deployment, RenewalRun
from certificates.renewal.scheduling import run_inline
from certificates.tests.factories import ca_account, http01_certificate, portal_host


@pytest.mark.parametrize(("typed", "stored"), [
    ("192.0.2.7", "192.0.2.7"), ("2001:DB8:0:0::1", "2001:db8::1"),
    ("[2001:db8::1]", "2001:db8::1"),
])
def test_an_ip_address_is_taken_in_its_canonical_form(typed, stored):
    assert v.normalize_san_list([typed, "www.example.test"], allow_ip_addresses=True) == [
        stored, "www.example.test"]


@pytest.mark.parametrize("typed",
                         ["10.1", "010.0.0.1", "0.0.0.0", "::", "224.0.0.1", "fe80::1%eth0",
                          "*.192.0.2.7"])
def test_what_is_no_usable_address_is_refused(typed):
    with pytest.raises(ValidationError):
        v.normalize_san_list([typed], allow_ip_addresses=True)


def test_an_ip_address_is_refused_where_only_dns_names_are_taken():
    with pytest.raises(ValidationError) as info:
        v.normalize_san_list(["192.0.2.7"])
    assert info.value.error_list[0].code == "ip_address"


@pytest.mark.django_db
def test_an_ip_address_certificate_must_use_http01(organization):
    ca = ca_account(organization)
    cert = Certificate(organization=organization, ca_account=ca, common_name="192.0.2.7",
                       sans=["192.0.2.7"], challenge=Challenge.DNS_01)
    with pytest.raises(ValidationError) as info:
        cert.full_clean()
    assert "http-01 for IP addresses" in " ".join(info.value.message_dict["challenge"])


@pytest.mark.django_db
def test_the_tls_check_of_an_ip_certificate_asks_for_the_address(organization):
    ca = ca_account(organization)
    host_row = type("Host", (), {"tls_sni_name": ""})()
    by_address = Certificate(organization=organization, ca_account=ca, common_name="192.0.2.7",
                             sans=["192.0.2.7"])
    both = Certificate(organization=organization, ca_account=ca, common_name="192.0.2.7",
                       sans=["192.0.2.7", "www.example.test"])
    assert sni_name(host_row, by_address) == "192.0.2.7"
    assert sni_name(host_row, both) == "www.example.test"


def served_without_sni(address, port):
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    with socket.create_connection((address, port), timeout=5) as raw, \
            context.wrap_socket(raw) as tls:  # no server_hostname: no SNI
        return hashlib.sha256(tls.getpeercert(binary_form=True)).hexdigest()


@pytest.mark.django_db
def test_an_ip_address_certificate_is_issued_by_pebble_and_served_to_a_client_without_sni(
    organization, pebble, target_host, settings
):
    settings.ACME_CA_BUNDLE = str(pebble.ca_bundle)
    ca = ca_account(organization, directory_url=pebble.directory_url, price=Decimal("0"))
    # No SNI name of its own: the check asks for the certificate's address.
    host = portal_host(organization, target_host, tls_sni_name="")
    cert = http01_certificate(organization, ca, host, [target_host.address])

    run = run_inline(certificate_id=cert.pk)

    assert run.status == RenewalRun.Status.SUCCEEDED, (run.error, list(run.steps.values()))
    leaf = x509.load_pem_x509_certificate(run.version.leaf_pem().encode())
    sans = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert [str(ip) for ip in sans.get_values_for_type(x509.IPAddress)] == [target_host.address]
    assert sans.get_values_for_type(x509.DNSName) == []
    assert Deployment.objects.get(certificate=cert).served is True
    assert served_without_sni(target_host.address, target_host.tls_port) == \
        run.version.fingerprint_sha256
