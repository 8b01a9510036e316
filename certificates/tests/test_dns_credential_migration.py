"""0020_dns_credentials: each certificate's RFC 2136 settings become a credential
of its organisation that the certificate chooses, and keep working."""

import json

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

BEFORE = [("certificates", "0019_notification_channels"),
          ("accounts", "0003_organization_require_mfa")]
AFTER = [("certificates", "0021_certificate_dns_fields_moved")]
SECRET = "dHNpZy1zZWNyZXQtdmFsdWUtMTIzNA=="


def migrate(targets):
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)
    return executor.loader.project_state(targets).apps


@pytest.fixture
def latest_schema_after():
    """Every app migrated to its newest migration again once the test is done:
    the tests after this one share the database and need today's schema."""
    yield
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(executor.loader.graph.leaf_nodes())


@pytest.mark.django_db(transaction=True)
def test_each_certificates_tsig_settings_become_a_credential_it_chooses(latest_schema_after):
    old = migrate(BEFORE)
    org = old.get_model("accounts", "Organization").objects.create(name="Msen", slug="msen")
    ca = old.get_model("certificates", "CAAccount").objects.create(
        organization=org, name="CA", directory_url="https://ca.example/dir",
        contact_email="ops@example.test")
    Certificate = old.get_model("certificates", "Certificate")
    tsig = dict(dns_server="192.0.2.53", dns_port=5353, tsig_key_name="portal-key",
                tsig_algorithm="hmac-sha512", tsig_secret=SECRET)
    wildcard = Certificate.objects.create(
        organization=org, ca_account=ca, common_name="*.msen.jp", sans=["*.msen.jp", "msen.jp"],
        challenge="dns-01", **tsig)
    other = Certificate.objects.create(organization=org, ca_account=ca, common_name="a.msen.jp",
                                       sans=["a.msen.jp"], challenge="dns-01", **tsig)
    plain = Certificate.objects.create(organization=org, ca_account=ca, common_name="b.msen.jp")

    new = migrate(AFTER)

    Credential = new.get_model("certificates", "DNSCredential")
    credential = Credential.objects.get()
    assert (credential.kind, credential.server, credential.port, credential.tsig_key_name,
            credential.tsig_algorithm) == ("rfc2136", "192.0.2.53", 5353, "portal-key",
                                           "hmac-sha512")
    assert json.loads(credential.secrets) == {"tsig_secret": SECRET}
    assert sorted(credential.zones) == ["a.msen.jp", "msen.jp"]
    Certificate = new.get_model("certificates", "Certificate")
    for cert in (wildcard, other):
        assert list(Certificate.objects.get(pk=cert.pk).dns_credentials.all()) == [credential]
    assert not Certificate.objects.get(pk=plain.pk).dns_credentials.exists()

    # What issuance reads: every name falls in the credential's zones, and the
    # stored secret is stored encrypted, as before.
    from certificates.dns01.publishing import best_credential
    from certificates.models import DNSCredential

    current = DNSCredential.objects.get(pk=credential.pk)
    for name in ("_acme-challenge.msen.jp", "_acme-challenge.a.msen.jp"):
        assert best_credential([current], name) == current
    current.full_clean()
    with connection.cursor() as cursor:
        cursor.execute("SELECT secrets FROM certificates_dnscredential")
        assert SECRET not in cursor.fetchone()[0]
