"""Installing against a real nginx: files, modes and backup; a config test that
fails, and a leaf that is not served, rolled back; the private key never in a
file anyone else may read."""

from __future__ import annotations

import stat

from testbed import certs

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
    steps,
    write_config,
)


def live_files(nginx):
    return {path: path.read_bytes() for path in (
        nginx.private_key_path, nginx.certificate_path, nginx.ca_bundle_path,
        nginx.fullchain_path)}


def test_install_backs_up_writes_files_with_their_modes_and_is_served(
        tmp_path, portal, nginx, ca):
    before = live_files(nginx)
    old_leaf = served(nginx)
    entry = install_entry(ca)
    portal.answer("checkin", check_in_answer([entry]))
    portal.answer("reports", (200, {}))
    config = write_config(tmp_path, portal, {NAME: nginx_section(nginx, tmp_path)})

    with ModeWatcher(nginx.ssl_dir, tmp_path / "backup") as watcher:
        assert run_agent("run", "--config", str(config)) == 0

    report = last_report(portal)
    assert report["request"] == 17
    assert report["outcome"] == "deployed", report
    assert report["served_fingerprint"] == entry["fingerprint"] == served(nginx)
    assert [s for s in steps(report) if s[1] != "started"] == [
        ("backup", "done"), ("upload", "done"), ("install", "done"), ("config_test", "done"),
        ("reload", "done"), ("tls_check", "done"), ("cleanup", "done")]
    assert all(step["at"].endswith("Z") for step in report["steps"])
    files = entry["files"]
    assert nginx.private_key_path.read_text() == files["private_key"]
    assert nginx.certificate_path.read_text() == files["certificate"]
    assert nginx.ca_bundle_path.read_text() == files["ca_bundle"]
    assert nginx.fullchain_path.read_text() == files["fullchain"]
    assert stat.S_IMODE(nginx.private_key_path.stat().st_mode) == 0o600
    assert stat.S_IMODE(nginx.certificate_path.stat().st_mode) == 0o644
    assert stat.S_IMODE(nginx.fullchain_path.stat().st_mode) == 0o644
    # The old files, in one folder of backup_dir named by the label and the time.
    (folder,) = (tmp_path / "backup").iterdir()
    assert folder.name.startswith(f"{NAME}-") and folder.name.endswith("Z")
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert (folder / "private_key-privkey.pem").read_bytes() == before[nginx.private_key_path]
    assert (folder / "certificate-cert.pem").read_bytes() == before[nginx.certificate_path]
    assert old_leaf != served(nginx)
    # No temporary file is left beside the live ones.
    assert sorted(p.name for p in nginx.ssl_dir.iterdir()) == [
        "cert.pem", "chain.pem", "fullchain.pem", "privkey.pem"]
    assert watcher.wider == []
    # The check-in named the certificate with what was installed before.
    (checkin,) = portal.posted("checkin")
    assert checkin["mode"] == "run" and checkin["wait"] == 0
    assert checkin["certificates"][NAME] == {
        "document_root": True, "key_on_host": False, "csr": "",
        "installed_fingerprint": certs.leaf_sha256(folder / "certificate-cert.pem")}
    headers = portal.requests[0][2]
    assert headers["Authorization"] == "Bearer secret-token"


def test_a_failing_config_test_puts_the_old_files_back_and_the_old_leaf_stays_served(
        tmp_path, portal, nginx, ca, capsys):
    before = live_files(nginx)
    old_leaf = served(nginx)
    other_key, _cert, _chain, _fp = issue(ca)
    # A key that is not the certificate's: `nginx -t` refuses the pair.
    entry = install_entry(ca, key_pem=other_key)
    portal.answer("checkin", check_in_answer([entry]))
    portal.answer("reports", (200, {}))
    config = write_config(tmp_path, portal, {NAME: nginx_section(nginx, tmp_path)})

    assert run_agent("run", "--config", str(config)) == 1

    report = last_report(portal)
    assert report["outcome"] == "rolled_back", report
    assert report["served_fingerprint"] == old_leaf == served(nginx)
    assert "config_test" in report["error"]
    names = steps(report)
    assert ("config_test", "failed") in names and ("rollback", "done") in names
    assert ("reload", "done") not in names
    failed = next(s for s in report["steps"] if s["name"] == "config_test"
                  and s["status"] == "failed")
    assert "key values mismatch" in failed["detail"] or "failed" in failed["detail"]
    assert live_files(nginx) == before
    assert stat.S_IMODE(nginx.private_key_path.stat().st_mode) == 0o600
    # For a person: what happened, one line each (nginx's lines joined).
    err = capsys.readouterr().err.splitlines()
    assert all(line.startswith("fujissl-agent: ") for line in err), err
    assert any(line.startswith(f"fujissl-agent: [{NAME}] rolled back: config_test")
               and "key values mismatch" in line for line in err), err


def test_a_leaf_that_is_not_served_is_rolled_back_and_reloaded(tmp_path, portal, nginx, ca):
    before = live_files(nginx)
    old_leaf = served(nginx)
    entry = install_entry(ca)
    portal.answer("checkin", check_in_answer([entry]))
    portal.answer("reports", (200, {}))
    # The TLS check asks a name that nginx answers with another server's
    # certificate: the new leaf never shows.
    section = nginx_section(nginx, tmp_path, sni="other.example.test",
                            tls_check=f"127.0.0.1:{portal.port}")
    config = write_config(tmp_path, portal, {NAME: section}, tls_grace="1")

    assert run_agent("run", "--config", str(config)) == 1

    report = last_report(portal)
    assert report["outcome"] == "rolled_back", report
    names = steps(report)
    assert names.index(("reload", "done")) < names.index(("tls_check", "failed"))
    assert names.index(("tls_check", "failed")) < names.index(("rollback", "done"))
    assert "still serves" in report["error"]
    assert live_files(nginx) == before
    assert served(nginx) == old_leaf


def test_a_certificate_without_a_section_is_reported_failed_and_nothing_changes(
        tmp_path, portal, nginx, ca):
    before = live_files(nginx)
    portal.answer("checkin", check_in_answer([install_entry(ca, name="mail.example.test")]))
    portal.answer("reports", (200, {}))
    config = write_config(tmp_path, portal, {NAME: nginx_section(nginx, tmp_path)})

    assert run_agent("run", "--config", str(config)) == 1

    report = last_report(portal)
    assert report["outcome"] == "failed"
    assert "no section [mail.example.test]" in report["error"]
    assert "add one" in report["error"]
    assert live_files(nginx) == before


def test_two_certificates_one_breaking_the_config_test_each_tried_alone(
        tmp_path, portal, nginx, ca):
    """The group's config test fails: both are rolled back, then each is
    installed on its own, and the good one is deployed."""
    nginx_site = "site2.example.test"
    site_dir = tmp_path / "site2"
    site_dir.mkdir()
    good = install_entry(ca, request=1)
    key_a, *_ = issue(ca)
    bad = install_entry(ca, request=2, name=nginx_site, key_pem=key_a)
    portal.answer("checkin", check_in_answer([good, bad]))
    portal.answer("reports", (200, {}))
    # The second section's files are not nginx's, but its key mismatch is
    # found by a config test of its own that checks them with openssl.
    check = (f"test \"$(openssl x509 -noout -pubkey -in {site_dir}/cert.pem)\" = "
             f"\"$(openssl pkey -pubout -in {site_dir}/key.pem)\"")
    sections = {
        NAME: nginx_section(nginx, tmp_path),
        nginx_site: {"private_key": f"{site_dir}/key.pem", "certificate": f"{site_dir}/cert.pem",
                     "backup_dir": str(tmp_path / "backup"), "config_test": check,
                     "tls_check": "none"},
    }
    config = write_config(tmp_path, portal, sections)

    assert run_agent("run", "--config", str(config)) == 1

    reports = {r["request"]: r for r in portal.posted("reports")}
    assert reports[1]["outcome"] == "deployed", reports[1]
    assert reports[2]["outcome"] == "rolled_back", reports[2]
    assert served(nginx) == good["fingerprint"]
    assert not (site_dir / "cert.pem").exists()  # new there: taken away again


def test_old_backups_beyond_five_are_pruned_and_leftovers_removed(tmp_path, portal, ca):
    files, backup, outside = tmp_path / "files", tmp_path / "backup", tmp_path / "outside"
    for folder in (files, backup, outside):
        folder.mkdir()
    backup.chmod(0o700)
    (files / "c.pem").write_text("old")
    # A temporary file of an agent stopped half-way.
    leftover = files / ".k.pem.fujissl-agent-0123456789ab.tmp"
    leftover.write_text("half a key")
    old = [f"{NAME}-2020010{day}T000000.000000Z" for day in range(1, 7)]
    for name in old:
        (backup / name).mkdir()
        (backup / name / "certificate-c.pem").write_text("x")
    (outside / "keep").write_text("not the agent's")
    (backup / f"{NAME}-20200109T000000.000000Z").symlink_to(outside)  # planted
    (backup / "mine").mkdir()  # not the agent's name: never touched
    portal.answer("checkin", check_in_answer([install_entry(ca)]))
    portal.answer("reports", (200, {}))
    config = write_config(tmp_path, portal, {NAME: {
        "private_key": f"{files}/k.pem", "certificate": f"{files}/c.pem",
        "backup_dir": str(backup), "tls_check": "none"}})

    assert run_agent("run", "--config", str(config)) == 0

    assert last_report(portal)["outcome"] == "deployed"
    kept = sorted(p.name for p in backup.iterdir())
    assert len(kept) == 6 and "mine" in kept
    assert old[:2] == [name for name in old if name not in kept]
    assert (outside / "keep").exists()
    assert not leftover.exists()
    assert sorted(p.name for p in files.iterdir()) == ["c.pem", "k.pem"]


def test_a_failing_reload_is_rolled_back_and_a_handshake_decides(tmp_path, portal, nginx, ca):
    """The reload fails, and so does the one after the old files are back: the
    old leaf is still served (the server never loaded the new files), so the
    certificate counts as rolled back, and the report says how."""
    before = live_files(nginx)
    old_leaf = served(nginx)
    portal.answer("checkin", check_in_answer([install_entry(ca)]))
    portal.answer("reports", (200, {}))
    config = write_config(tmp_path, portal, {NAME: nginx_section(
        nginx, tmp_path, reload="echo the service manager is away >&2; exit 4")})

    assert run_agent("run", "--config", str(config)) == 1

    report = last_report(portal)
    assert report["outcome"] == "rolled_back", report
    assert report["served_fingerprint"] == old_leaf
    assert "exit status 4: the service manager is away" in report["error"]
    rollback = [s for s in report["steps"] if s["name"] == "rollback"][-1]
    assert rollback["status"] == "done"
    assert "the reload after them" in rollback["detail"]
    assert "serves the previous certificate again" in rollback["detail"]
    assert live_files(nginx) == before


def test_serve_installs_what_a_check_in_brings(tmp_path, portal, ca):
    files = tmp_path / "files"
    files.mkdir()
    entry = install_entry(ca)
    portal.answer("checkin", check_in_answer([entry]), check_in_answer())
    portal.answer("reports", (200, {}))
    config = write_config(tmp_path, portal, {NAME: {
        "private_key": f"{files}/k.pem", "certificate": f"{files}/c.pem",
        "backup_dir": str(tmp_path / "backup"), "tls_check": "none"}})

    assert run_agent("serve", "--config", str(config), "--max-check-ins", "2") == 0

    assert last_report(portal)["outcome"] == "deployed"
    assert (files / "c.pem").read_text() == entry["files"]["certificate"]
    assert [b["mode"] for b in portal.posted("checkin")] == ["serve", "serve"]
