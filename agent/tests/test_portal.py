"""What the agent does with the portal's answers and silences (the protocol's
error table): enrolment, a revoked credential, a portal out of reach or not
trusted, rate limiting, reports that wait for the portal."""

from __future__ import annotations

import json
import stat

from testbed.ports import free_port

from fujissl_agent.state import StateDir

from .helpers import (
    NAME,
    FakePortal,
    check_in_answer,
    install_entry,
    nginx_section,
    run_agent,
    write_config,
)


def refusal(status, code, message="no", **headers):
    return (status, {"error": {"code": code, "message": message}}, headers)


def plain_section(tmp_path):
    files = tmp_path / "files"
    files.mkdir(exist_ok=True)
    (files / "k.pem").write_text("old key")
    (files / "c.pem").write_text("old cert")
    return {"private_key": f"{files}/k.pem", "certificate": f"{files}/c.pem",
            "backup_dir": str(tmp_path / "backup")}


def test_enrol_writes_a_private_credential(tmp_path, portal, capsys):
    portal.answer("enrol", (201, {"host": {"id": 7, "name": "web1 (agent)"},
                                  "token": "the-token", "interval": 300, "poll_wait": 25}))
    config = write_config(tmp_path, None, {})
    code = run_agent("enrol", "--url", portal.url + "/", "--code", "ABCD-EFGH-JKLM",
                     "--ca-file", str(portal.ca_path), "--config", str(config))
    assert code == 0
    (body,) = portal.posted("enrol")
    assert body["code"] == "ABCD-EFGH-JKLM" and body["agent_version"] == "1.0.0"
    assert body["hostname"]
    enrol_headers = portal.requests[0][2]
    assert "Authorization" not in enrol_headers
    path = tmp_path / "state" / "credential.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    credential = json.loads(path.read_text())
    assert credential["token"] == "the-token" and credential["url"] == portal.url
    assert credential["poll_wait"] == 25
    assert "enrolled as web1 (agent) (host 7)" in capsys.readouterr().out


def test_an_enrolment_code_already_used_exits_2(tmp_path, portal, capsys):
    portal.answer("enrol", refusal(403, "enrolment_code_used", "This code was used already."))
    config = write_config(tmp_path, None, {})
    code = run_agent("enrol", "--url", portal.url, "--code", "X", "--ca-file",
                     str(portal.ca_path), "--config", str(config))
    assert code == 2
    assert "This code was used already." in capsys.readouterr().err
    assert not (tmp_path / "state" / "credential.json").exists()


def test_a_revoked_credential_exits_3(tmp_path, portal, capsys):
    portal.answer("checkin", refusal(401, "credential_revoked", "Revoked."))
    config = write_config(tmp_path, portal, {NAME: plain_section(tmp_path)})
    assert run_agent("run", "--config", str(config)) == 3
    assert ("the portal revoked this host's credential; enrol again"
            in capsys.readouterr().err)


def test_an_unknown_credential_exits_3(tmp_path, portal):
    portal.answer("checkin", refusal(401, "credential_unknown", "Who?"))
    config = write_config(tmp_path, portal, {})
    assert run_agent("run", "--config", str(config)) == 3


def test_not_enrolled_exits_3(tmp_path, capsys):
    config = write_config(tmp_path, None, {})
    assert run_agent("run", "--config", str(config)) == 3
    assert "not enrolled" in capsys.readouterr().err


def test_an_unreachable_portal_exits_1_and_changes_nothing(tmp_path, portal, capsys):
    section = plain_section(tmp_path)
    config = write_config(tmp_path, portal, {NAME: section})
    state = StateDir(str(tmp_path / "state"))
    credential = state.read_credential()
    credential["url"] = f"https://127.0.0.1:{free_port()}"  # nothing listens there
    state.write_credential(credential)
    files = tmp_path / "files"
    before = {p.name: p.read_bytes() for p in files.iterdir()}

    assert run_agent("run", "--config", str(config)) == 1

    err = capsys.readouterr().err
    assert "the portal cannot be reached, nothing was changed" in err
    assert "connection refused" in err
    assert {p.name: p.read_bytes() for p in files.iterdir()} == before
    assert not (tmp_path / "backup").exists()
    assert "last_checkin_error" in state.read_state()


def test_a_portal_whose_certificate_is_not_trusted_is_not_spoken_to(tmp_path, portal, capsys):
    portal.answer("checkin", check_in_answer())
    config = write_config(tmp_path, portal, {})
    state = StateDir(str(tmp_path / "state"))
    credential = state.read_credential()
    credential["ca_file"] = ""
    state.write_credential(credential)
    config.write_text(config.read_text().replace(f"ca_file = {portal.ca_path}\n", ""))

    assert run_agent("run", "--config", str(config)) == 1

    assert "TLS certificate is not trusted" in capsys.readouterr().err
    assert portal.posted("checkin") == []


def test_a_server_error_is_unreachable(tmp_path, portal, capsys):
    portal.answer("checkin", (502, b"bad gateway"))
    config = write_config(tmp_path, portal, {})
    assert run_agent("run", "--config", str(config)) == 1
    assert "answered 502" in capsys.readouterr().err


def test_rate_limited_run_exits_0(tmp_path, portal, capsys):
    portal.answer("checkin", refusal(429, "rate_limited", "Slow down.", **{"Retry-After": 30}))
    config = write_config(tmp_path, portal, {})
    assert run_agent("run", "--config", str(config)) == 0
    assert "rate limited" in capsys.readouterr().err


def test_invalid_is_logged_and_exits_1(tmp_path, portal, capsys):
    portal.answer("checkin", refusal(400, "invalid", "certificates: not a mapping"))
    config = write_config(tmp_path, portal, {})
    assert run_agent("run", "--config", str(config)) == 1
    assert "certificates: not a mapping" in capsys.readouterr().err


def test_a_report_the_portal_missed_is_sent_at_the_next_run(tmp_path, portal, nginx, ca):
    entry = install_entry(ca)
    portal.answer("checkin", check_in_answer([entry]), check_in_answer())
    portal.answer("reports", (503, b"down"), (200, {}))
    config = write_config(tmp_path, portal, {NAME: nginx_section(nginx, tmp_path)})

    assert run_agent("run", "--config", str(config)) == 0
    state = StateDir(str(tmp_path / "state")).read_state()
    assert [r["request"] for r in state["pending_reports"]] == [17]

    assert run_agent("run", "--config", str(config)) == 0
    reports = portal.posted("reports")
    assert [r["request"] for r in reports] == [17, 17]
    assert reports[-1]["outcome"] == "deployed"
    assert StateDir(str(tmp_path / "state")).read_state()["pending_reports"] == []
    # Sent before the check-in, so the portal does not send the version again.
    order = [path for method, path, *_ in portal.requests]
    assert order[-2:] == ["/agent/v1/reports", "/agent/v1/checkin"]


def test_a_ca_file_that_cannot_be_read_is_one_line(tmp_path, portal, capsys):
    config = write_config(tmp_path, portal, {})
    state = StateDir(str(tmp_path / "state"))
    bad = tmp_path / "not-a-ca.pem"
    bad.write_text("not a certificate")
    state.write_credential({**state.read_credential(), "ca_file": str(bad)})
    config.write_text(config.read_text().replace(f"ca_file = {portal.ca_path}\n", ""))
    assert run_agent("run", "--config", str(config)) == 1
    err = capsys.readouterr().err
    assert f"cannot load the CA file {bad}" in err
    assert err.count("\n") == 1


def test_a_portal_on_the_loopback_address_may_speak_plain_http(tmp_path, ca):
    """As a portal's own end-to-end test serves it (and a portal on the same
    machine may): enrol and run over http://127.0.0.1."""
    portal = FakePortal(tmp_path / "plain", *ca, tls=False)
    try:
        portal.answer("enrol", (201, {"host": {"id": 1, "name": "h"}, "token": "t"}))
        portal.answer("checkin", check_in_answer())
        config = write_config(tmp_path, None, {})
        assert run_agent("enrol", "--url", portal.url, "--code", "C",
                         "--config", str(config)) == 0
        assert run_agent("run", "--config", str(config)) == 0
        assert portal.posted("checkin")[0]["mode"] == "run"
    finally:
        portal.stop()


def test_enrol_refuses_plain_http_elsewhere(tmp_path, capsys):
    config = write_config(tmp_path, None, {})
    assert run_agent("enrol", "--url", "http://portal.example.test", "--code", "C",
                     "--config", str(config)) == 1
    assert "is plain http" in capsys.readouterr().err
