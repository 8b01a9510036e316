"""Import into the inventory: PEM bundles with and without a key, PKCS#12, many
files at once, by upload, by `manage.py import_certificates`; refusals that
name what is wrong and leave nothing half-saved."""

import csv
import io
import re

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs12
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import CommandError, call_command

from certificates.inventory import importing
from certificates.inventory.parsing import ImportRefused
from certificates.models import AuditEvent, InventoryCertificate

from . import pki

pytestmark = pytest.mark.django_db


def bundle(name="shop.example.test", kind="p256"):
    """(leaf key, leaf, CA certificate, CA key) of a throw-away chain."""
    ca_key, key = pki.private_key(), pki.private_key(kind)
    ca = pki.issue("Bought CA", ca_key.public_key(), ca_key, ca=True, days=3650)
    leaf = pki.issue(name, key.public_key(), ca_key, issuer="Bought CA", ca=False,
                     names=[name, f"www.{name}"])
    return key, leaf, ca, ca_key


def test_a_pem_bundle_with_its_chain_and_key_is_imported_with_what_identifies_it(
        organization, owner):
    key, leaf, ca, _ = bundle(kind="rsa2048")
    text = pki.key_pem(key) + pki.cert_pem(leaf) + pki.cert_pem(ca)
    result = importing.import_files(organization, [("shop.pem", text.encode())], by=owner)
    [row] = result.created
    row.refresh_from_db()
    assert row.common_name == "shop.example.test"
    assert row.sans == ["shop.example.test", "www.shop.example.test"]
    assert row.issuer == "CN=Bought CA"
    assert row.serial == format(leaf.serial_number, "X").zfill(2)
    assert (row.key_type, row.key_size) == ("RSA", 2048)
    assert row.signature_algorithm == "sha256WithRSAEncryption" or "sha256" in \
        row.signature_algorithm.lower()
    assert row.chain_pem.count("BEGIN CERTIFICATE") == 2
    assert row.has_key and "PRIVATE KEY" in row.private_key
    assert row.source == "imported" and row.seen_at == [{"file": "shop.pem"}]
    assert row.expires_at == leaf.not_valid_after_utc


def test_the_private_key_is_encrypted_at_rest(organization):
    key, leaf, ca, _ = bundle()
    importing.import_files(organization, [("a.pem", (pki.key_pem(key) + pki.cert_pem(leaf))
                                           .encode())])
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT private_key FROM certificates_inventorycertificate")
        [(stored,)] = cursor.fetchall()
    assert "PRIVATE KEY" not in stored and stored


def test_a_certificate_without_its_key_and_a_folder_of_separate_files_import(organization):
    key, leaf, ca, _ = bundle()
    other_key, other, other_ca, _ = bundle("mail.example.test")
    files = [("cert.pem", pki.cert_pem(leaf).encode()), ("chain.pem", pki.cert_pem(ca).encode()),
             ("privkey.pem", pki.key_pem(key).encode()),
             ("mail.crt", pki.cert_pem(other).encode())]
    result = importing.import_files(organization, files)
    rows = {row.common_name: row for row in result.created}
    assert set(rows) == {"shop.example.test", "mail.example.test"}
    assert rows["shop.example.test"].has_key
    assert rows["shop.example.test"].chain_pem.count("BEGIN CERTIFICATE") == 2
    assert not rows["mail.example.test"].has_key


def test_a_pkcs12_file_with_a_password_is_imported(organization):
    key, leaf, ca, _ = bundle()
    data = pkcs12.serialize_key_and_certificates(
        b"shop", key, leaf, [ca], serialization.BestAvailableEncryption(b"s3cret"))
    [row] = importing.import_files(organization, [("shop.p12", data)],
                                   password="s3cret").created
    assert row.has_key and row.chain_pem.count("BEGIN CERTIFICATE") == 2
    with pytest.raises(ImportRefused, match="shop.p12"):
        importing.import_files(organization, [("shop.p12", data)], password="wrong")


@pytest.mark.parametrize(("files", "message"), [
    ([("notes.txt", b"hello")], "notes.txt is neither PEM nor a PKCS#12"),
    ([("key.pem", None)], "key.pem holds a private key without its certificate"),
    ([("root.pem", "ca")], "Only CA certificates were found"),
    ([("cert.pem", "leaf"), ("key.pem", "other-key")], "key.pem does not match"),
    ([("empty.pem", b"-----BEGIN NOTHING-----\nAA==\n-----END NOTHING-----\n")],
     "empty.pem holds no certificate"),
])
def test_bad_files_are_refused_with_a_message_naming_them(organization, files, message):
    key, leaf, ca, _ = bundle()
    materials = {None: pki.key_pem(key).encode(), "ca": pki.cert_pem(ca).encode(),
                 "leaf": pki.cert_pem(leaf).encode(),
                 "other-key": pki.key_pem(pki.private_key()).encode()}
    files = [(name, materials.get(content, content) if not isinstance(content, bytes)
              else content) for name, content in files]
    with pytest.raises(ImportRefused, match=message):
        importing.import_files(organization, files)
    assert not InventoryCertificate.objects.exists()


def test_one_refused_file_among_many_saves_nothing(organization):
    _, leaf, _, _ = bundle()
    with pytest.raises(ImportRefused):
        importing.import_files(organization, [("good.pem", pki.cert_pem(leaf).encode()),
                                              ("bad.pem", b"not a certificate")])
    assert not InventoryCertificate.objects.exists()


def test_the_same_certificate_twice_is_one_row_and_gains_its_key(organization):
    key, leaf, _, _ = bundle()
    importing.import_files(organization, [("a.pem", pki.cert_pem(leaf).encode())])
    result = importing.import_files(organization, [
        ("b.pem", (pki.cert_pem(leaf) + pki.key_pem(key)).encode())])
    assert [len(result.created), len(result.updated)] == [0, 1]
    row = InventoryCertificate.objects.get()
    assert row.has_key and row.where() == "a.pem, b.pem"


def test_many_files_upload_in_the_ui_and_a_mismatch_is_refused_on_the_page(
        client, organization, operator):
    client.force_login(operator)
    key, leaf, ca, _ = bundle()
    _, other, _, _ = bundle("www.example.test")
    page = client.get("/inventory/import/")
    assert page.status_code == 200
    response = client.post("/inventory/import/", {"files": [
        SimpleUploadedFile("shop.pem", (pki.cert_pem(leaf) + pki.cert_pem(ca)).encode()),
        SimpleUploadedFile("www.pem", pki.cert_pem(other).encode())]})
    assert response.status_code == 302
    assert InventoryCertificate.objects.count() == 2
    assert AuditEvent.objects.filter(action="certificates_imported").count() == 1
    refused = client.post("/inventory/import/", {
        "pem": pki.cert_pem(leaf) + pki.key_pem(pki.private_key())})
    assert refused.status_code == 200
    assert "does not match any certificate" in refused.content.decode()
    assert not InventoryCertificate.objects.filter(private_key__gt="").exists()


def test_a_viewer_may_not_import(client, organization, viewer):
    client.force_login(viewer)
    assert client.get("/inventory/import/").status_code == 403


def test_the_command_imports_a_folder_and_a_pkcs12_file(organization, tmp_path):
    key, leaf, ca, _ = bundle()
    folder = tmp_path / "certs"
    folder.mkdir()
    (folder / "fullchain.pem").write_text(pki.cert_pem(leaf) + pki.cert_pem(ca))
    (folder / "privkey.pem").write_text(pki.key_pem(key))
    (folder / "README").write_text("not read: not a certificate file name")
    p12_key, p12_leaf, p12_ca, _ = bundle("vpn.example.test")
    p12 = tmp_path / "vpn.pfx"
    p12.write_bytes(pkcs12.serialize_key_and_certificates(
        b"vpn", p12_key, p12_leaf, [p12_ca], serialization.BestAvailableEncryption(b"pw")))
    out = io.StringIO()
    call_command("import_certificates", str(folder), "--organization", organization.slug,
                 stdout=out)
    call_command("import_certificates", str(p12), "--organization", organization.slug,
                 "--password", "pw", stdout=out)
    names = set(InventoryCertificate.objects.values_list("common_name", flat=True))
    assert names == {"shop.example.test", "vpn.example.test"}
    assert "1 imported" in out.getvalue()
    with pytest.raises(CommandError, match="does not match"):
        (folder / "privkey.pem").write_text(pki.key_pem(pki.private_key()))
        call_command("import_certificates", str(folder), "--organization", organization.slug)


def test_the_csv_export_lists_every_certificate_managed_or_not(client, organization, owner,
                                                               tmp_path):
    from .factories import issued_world

    world = issued_world(organization, tmp_path)
    _, leaf, ca, _ = bundle()
    importing.import_files(organization, [("shop.pem", pki.cert_pem(leaf).encode())])
    client.force_login(owner)
    response = client.get("/inventory/export.csv")
    assert response.status_code == 200
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert {row["common_name"] for row in rows} == {world["certificate"].common_name,
                                                    "shop.example.test"}
    by_name = {row["common_name"]: row for row in rows}
    assert by_name["shop.example.test"]["managed"] == "false"
    assert by_name["shop.example.test"]["issuer"] == "CN=Bought CA"
    managed = by_name[world["certificate"].common_name]
    assert managed["managed"] == "true" and managed["serial"]
    assert managed["deployed_or_served_at"] == world["host"].name


def test_the_inventory_list_filters_by_source_issuer_and_endpoint_state(client, organization,
                                                                       owner, tmp_path):
    from .factories import issued_world, unmanaged_rows

    world = issued_world(organization, tmp_path)
    rows = unmanaged_rows(organization, 20)  # every tenth at an endpoint, "problem" at u0
    client.force_login(owner)

    def names(**params):
        page = client.get("/inventory/", params).content.decode()
        return set(re.findall(r'class="strong" href="[^"]+">([^<]+)</a>', page))

    managed = world["certificate"].common_name
    assert managed in names() and "u1.example.test" in names()
    assert names(source="issued") == {managed}
    assert managed not in names(source="elsewhere")
    imported = {r.common_name for r in rows if r.source == "imported"}
    assert names(source="imported") == imported
    assert names(issuer="Other CA", source="elsewhere") == {r.common_name for r in rows}
    assert names(endpoint="problem") == {"u0.example.test"}
    assert names(endpoint="ok") == {"u10.example.test"}


def test_an_imported_certificate_near_expiry_is_told_once_by_the_periodic_checks(
        organization, owner, django_capture_on_commit_callbacks):
    from django.core import mail

    from api.models import Webhook, WebhookDelivery
    from certificates.models import MonitoredEndpoint, Notification
    from certificates.renewal.checks import periodic_checks

    owner.email = "owner@example.test"
    owner.save()
    Webhook.objects.create(organization=organization, url="https://hooks.example.test/",
                           secret="s" * 20, events=["inventory.expiring"])
    ca_key, key = pki.private_key(), pki.private_key()
    soon = pki.issue("soon.example.test", key.public_key(), ca_key, issuer="Bought CA",
                     ca=False, names=["soon.example.test"], days=5)
    served = pki.issue("served.example.test", key.public_key(), ca_key, issuer="Bought CA",
                       ca=False, names=["served.example.test"], days=5)
    result = importing.import_files(organization, [
        ("soon.pem", pki.cert_pem(soon).encode()), ("served.pem", pki.cert_pem(served).encode())])
    watched = next(r for r in result.created if r.common_name == "served.example.test")
    # Served at a monitored endpoint: that endpoint's check tells it, not this.
    MonitoredEndpoint.objects.create(organization=organization, address="served.example.test",
                                     certificate=watched)
    for _ in range(2):
        with django_capture_on_commit_callbacks(execute=True):
            periodic_checks()
    told = Notification.objects.filter(kind="unmanaged_expiring")
    assert [n.inventory_certificate.common_name for n in told] == ["soon.example.test"]
    assert WebhookDelivery.objects.filter(event="inventory.expiring").count() == 1
    [message] = [m for m in mail.outbox if "soon.example.test" in m.subject]
    assert "managed elsewhere" in message.subject and "soon.pem" in message.body
