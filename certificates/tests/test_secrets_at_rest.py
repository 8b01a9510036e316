"""Private keys and shared secrets never sit in the database, or in a dump, in clear."""

import io

import pytest
from cryptography.fernet import Fernet
from django.core.management import call_command
from django.db import connection

from certificates.models import CAAccount, CertificateVersion, DNSCredential, TargetHost
from certificates.tests.factories import one_of_everything

pytestmark = pytest.mark.django_db


@pytest.fixture
def world(organization, tmp_path):
    return one_of_everything(organization, tmp_path)


def secrets_in(world):
    ca, credential, version, host, run = (
        world[k] for k in ("ca_account", "dns_credential", "version", "host", "run"))
    values = [ca.account_key, ca.eab_hmac_key, credential.secret_values["tsig_secret"],
              version.private_key,
              host.login_key, run.private_key]
    assert all(values), "every secret field of the fixture must hold a secret"
    # The body of each key too, so that a re-wrapped PEM would still be caught.
    return values + [line for v in values for line in v.splitlines()
                     if len(line) > 20 and "-----" not in line]


def raw_database_text():
    chunks = []
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names():
            cursor.execute(f"SELECT * FROM {connection.ops.quote_name(table)}")
            chunks.extend(repr(row) for row in cursor.fetchall())
    return "\n".join(chunks)


def test_a_raw_read_of_every_table_finds_no_private_key_and_no_secret(world):
    text = raw_database_text()
    assert "PRIVATE KEY" not in text
    for secret in secrets_in(world):
        assert secret not in text


def test_dumpdata_writes_no_private_key_and_no_secret(world):
    out = io.StringIO()
    call_command("dumpdata", "accounts", "certificates", stdout=out)
    dump = out.getvalue()
    assert "PRIVATE KEY" not in dump
    for secret in secrets_in(world):
        assert secret not in dump
    assert world["version"].fingerprint_sha256 in dump  # the dump is not empty


def test_secrets_read_back_as_they_were_written(world):
    version = CertificateVersion.objects.get(pk=world["version"].pk)
    assert version.private_key == world["version"].private_key
    assert TargetHost.objects.get(pk=world["host"].pk).login_key == world["host"].login_key
    assert CAAccount.objects.get(pk=world["ca_account"].pk).eab_hmac_key == (
        world["ca_account"].eab_hmac_key)
    assert DNSCredential.objects.get(pk=world["dns_credential"].pk).secret_values == (
        world["dns_credential"].secret_values)


def test_a_dump_loads_back_with_its_secrets_intact(world, tmp_path):
    dump = tmp_path / "dump.json"
    call_command("dumpdata", "certificates.certificateversion", output=str(dump))
    CertificateVersion.objects.filter(pk=world["version"].pk).update(private_key="overwritten")
    call_command("loaddata", str(dump), verbosity=0)
    assert CertificateVersion.objects.get(pk=world["version"].pk).private_key == (
        world["version"].private_key)


def test_rotating_the_key_keeps_every_secret_readable(world, settings):
    old_keys = list(settings.FIELD_ENCRYPTION_KEYS)
    new_key = Fernet.generate_key().decode()
    settings.FIELD_ENCRYPTION_KEYS = [new_key, *old_keys]
    call_command("rotate_secrets", stdout=io.StringIO())
    settings.FIELD_ENCRYPTION_KEYS = [new_key]  # the old key is gone now
    assert CertificateVersion.objects.get(pk=world["version"].pk).private_key == (
        world["version"].private_key)
    assert TargetHost.objects.get(pk=world["host"].pk).login_key == world["host"].login_key
