"""Keys made on the host: the CSR (read back with cryptography), the key
installed when the portal sends none, and the next key made afterwards."""

from __future__ import annotations

import stat

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from .helpers import (
    NAME,
    ModeWatcher,
    check_in_answer,
    install_entry,
    issue,
    last_report,
    nginx_section,
    run_agent,
    served,
    write_config,
)


def csr_names(csr):
    common = csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
    sans = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return common, sans.get_values_for_type(x509.DNSName)


def test_a_csr_asked_for_is_made_here_and_sent(tmp_path, portal):
    portal.answer("checkin", check_in_answer(csr=[NAME, "*.example.test"]))
    portal.answer("csr", (200, {}))
    files = tmp_path / "files"
    sections = {
        NAME: {"private_key": f"{files}/www.key", "certificate": f"{files}/www.crt",
               "backup_dir": str(tmp_path / "backup"), "key_on_host": "yes",
               "alt_names": "example.test"},
        "*.example.test": {"private_key": f"{files}/w.key", "certificate": f"{files}/w.crt",
                           "backup_dir": str(tmp_path / "backup"), "key_on_host": "yes",
                           "key_type": "rsa"},
    }
    config = write_config(tmp_path, portal, sections)
    keys = tmp_path / "state" / "keys"

    with ModeWatcher(keys) as watcher:
        assert run_agent("run", "--config", str(config)) == 0

    sent = {body["certificate"]: body["csr"] for body in portal.posted("csr")}
    www = x509.load_pem_x509_csr(sent[NAME].encode())
    assert www.is_signature_valid
    assert csr_names(www) == (NAME, [NAME, "example.test"])
    assert isinstance(www.public_key(), ec.EllipticCurvePublicKey)
    assert www.public_key().curve.name == "secp256r1"
    wild = x509.load_pem_x509_csr(sent["*.example.test"].encode())
    assert wild.is_signature_valid
    assert csr_names(wild) == ("*.example.test", ["*.example.test"])
    assert isinstance(wild.public_key(), rsa.RSAPublicKey)
    # The key waits in the state folder, readable by its owner only, and is
    # the CSR's.
    key_path = keys / f"{NAME}.next.key"
    assert stat.S_IMODE(key_path.stat().st_mode) == 0o600
    key = serialization.load_pem_private_key(key_path.read_bytes(), None)
    assert key.public_key() == www.public_key()
    assert (keys / "_.example.test.next.key").exists()
    assert watcher.wider == []
    # The next check-in carries the CSR, and asked again, the same one is sent.
    portal.answer("checkin", check_in_answer(csr=[NAME]))
    assert run_agent("run", "--config", str(config)) == 0
    checkin = portal.posted("checkin")[-1]
    assert checkin["certificates"][NAME]["csr"] == sent[NAME]
    assert checkin["certificates"][NAME]["key_on_host"] is True
    assert portal.posted("csr")[-1]["csr"] == sent[NAME]


def test_the_key_made_here_is_installed_and_the_next_one_made(tmp_path, portal, nginx, ca):
    portal.answer("checkin", check_in_answer(csr=[NAME]))
    portal.answer("csr", (200, {}))
    portal.answer("reports", (200, {}))
    section = nginx_section(nginx, tmp_path, key_on_host="yes")
    config = write_config(tmp_path, portal, {NAME: section})
    assert run_agent("run", "--config", str(config)) == 0
    csr = x509.load_pem_x509_csr(portal.posted("csr")[0]["csr"].encode())
    pending = (tmp_path / "state" / "keys" / f"{NAME}.next.key").read_bytes()
    # The portal had the certificate issued for that CSR and sends no key.
    _key, cert_pem, chain_pem, fingerprint = issue(ca, key=csr.public_key())
    entry = install_entry(ca, cert_pem=cert_pem, chain_pem=chain_pem, fingerprint=fingerprint,
                          no_key=True)
    portal.answer("checkin", check_in_answer([entry]))

    with ModeWatcher(nginx.ssl_dir, tmp_path / "state" / "keys") as watcher:
        assert run_agent("run", "--config", str(config)) == 0

    report = last_report(portal)
    assert report["outcome"] == "deployed", report
    assert served(nginx) == fingerprint
    assert nginx.private_key_path.read_bytes() == pending
    assert stat.S_IMODE(nginx.private_key_path.stat().st_mode) == 0o600
    # A new key waits for the next certificate, and its CSR went to the portal.
    next_csr = x509.load_pem_x509_csr(portal.posted("csr")[-1]["csr"].encode())
    assert len(portal.posted("csr")) == 2
    assert next_csr.public_key() != csr.public_key()
    assert (tmp_path / "state" / "keys" / f"{NAME}.next.key").read_bytes() != pending
    assert watcher.wider == []


def test_a_certificate_not_for_the_key_made_here_is_refused(tmp_path, portal, nginx, ca):
    portal.answer("checkin", check_in_answer(csr=[NAME]))
    portal.answer("csr", (200, {}))
    portal.answer("reports", (200, {}))
    config = write_config(tmp_path, portal, {NAME: nginx_section(nginx, tmp_path,
                                                                 key_on_host="yes")})
    assert run_agent("run", "--config", str(config)) == 0
    before = nginx.private_key_path.read_bytes()
    entry = install_entry(ca, no_key=True)  # issued for another key
    portal.answer("checkin", check_in_answer([entry]))

    assert run_agent("run", "--config", str(config)) == 1

    report = last_report(portal)
    assert report["outcome"] == "failed"
    assert "not issued for the key waiting on this host" in report["error"]
    assert nginx.private_key_path.read_bytes() == before
    assert (tmp_path / "state" / "keys" / f"{NAME}.next.key").exists()


def test_a_csr_the_portal_refuses_is_not_sent_again(tmp_path, portal, capsys):
    portal.answer("checkin", check_in_answer(csr=[NAME]))
    portal.answer("csr", (400, {"error": {"code": "invalid",
                                          "message": "the CSR does not name example.test"}}),
                  (200, {}))
    files = tmp_path / "files"
    config = write_config(tmp_path, portal, {NAME: {
        "private_key": f"{files}/k.pem", "certificate": f"{files}/c.pem",
        "backup_dir": str(tmp_path / "backup"), "key_on_host": "yes"}})
    assert run_agent("run", "--config", str(config)) == 1
    assert "the portal refused the CSR: the CSR does not name example.test" in \
        capsys.readouterr().err
    assert not (tmp_path / "state" / "keys" / f"{NAME}.next.key").exists()
    # Asked again, a new key and CSR.
    assert run_agent("run", "--config", str(config)) == 0
    first, second = (body["csr"] for body in portal.posted("csr"))
    assert first != second


def test_the_csr_holds_the_names_the_portal_gives_also_for_the_next_key(
        tmp_path, portal, nginx, ca):
    names = [NAME, f"alt.{NAME}"]
    portal.answer("checkin", check_in_answer(csr=[{"certificate": NAME, "names": names}]))
    portal.answer("csr", (200, {}))
    portal.answer("reports", (200, {}))
    config = write_config(tmp_path, portal,
                          {NAME: nginx_section(nginx, tmp_path, key_on_host="yes")})
    assert run_agent("run", "--config", str(config)) == 0
    csr = x509.load_pem_x509_csr(portal.posted("csr")[0]["csr"].encode())
    sans = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.DNSName) == names
    # After installing, the next key's CSR names them too, with no alt_names configured.
    _key, cert_pem, chain_pem, fingerprint = issue(ca, key=csr.public_key())
    portal.answer("checkin", check_in_answer([install_entry(
        ca, cert_pem=cert_pem, chain_pem=chain_pem, fingerprint=fingerprint, no_key=True)]))
    assert run_agent("run", "--config", str(config)) == 0
    following = x509.load_pem_x509_csr(portal.posted("csr")[-1]["csr"].encode())
    sans = following.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.DNSName) == names
