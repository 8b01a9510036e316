"""Serial numbers are shown as the CA and openssl show them: uppercase hex, whole
bytes, a leading zero kept."""

import subprocess

import pytest

from certificates.models import CertificateVersion
from certificates.tests.factories import stored_version
from certificates.tests.pages import page
from certificates.tests.pki import cert_pem, issue, key_pem, private_key

pytestmark = pytest.mark.django_db

SERIAL = 0x0BF66D43F1F007D3  # fifteen hex digits: the first byte starts with a zero


def leaf_with_serial(name="www.example.test"):
    key = private_key()
    return key_pem(key), cert_pem(issue(name, key.public_key(), key, names=[name],
                                        serial=SERIAL))


def openssl_serial(pem: str) -> str:
    out = subprocess.run(["openssl", "x509", "-noout", "-serial"], input=pem, text=True,
                         capture_output=True, check=True).stdout
    return out.strip().removeprefix("serial=")


def test_a_new_version_stores_the_serial_as_openssl_prints_it(world):
    key, pem = leaf_with_serial()
    version = stored_version(world["certificate"], key, pem)
    assert openssl_serial(pem) == "0BF66D43F1F007D3"
    assert CertificateVersion.objects.get(pk=version.pk).serial == "0BF66D43F1F007D3"


def test_a_version_stored_without_its_leading_zero_is_shown_with_it(client, owner, world):
    key, pem = leaf_with_serial()
    version = stored_version(world["certificate"], key, pem)
    CertificateVersion.objects.filter(pk=version.pk).update(serial="bf66d43f1f007d3")
    world["certificate"].current_version = version
    world["certificate"].save()

    client.force_login(owner)
    client.defaults["HTTP_ACCEPT_LANGUAGE"] = "en"
    html = page(client, "certificates:certificate", world["certificate"].pk)
    assert "0BF66D43F1F007D3" in html
    assert "bf66d43f1f007d3" not in html
