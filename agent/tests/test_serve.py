"""``serve``: long polling, Retry-After honoured, a portal out of reach waited
for, SIGTERM obeyed; and ``status``."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import pytest
from cryptography import x509
from testbed.ports import free_port

from fujissl_agent import runner
from fujissl_agent.state import StateDir

from .helpers import (
    AGENT_DIR,
    IN_PROCESS,
    NAME,
    PYTHON,
    check_in_answer,
    install_entry,
    issue,
    run_agent,
    write_config,
)


def held(body):
    """A portal with nothing to do holds the answer for ``wait`` seconds."""
    time.sleep(body["wait"])
    return check_in_answer()[0], {**check_in_answer()[1], "poll_wait": 1}


def test_serve_long_polls_honours_retry_after_and_stops_on_sigterm(tmp_path, portal):
    portal.answer("checkin", (429, {"error": {"code": "rate_limited", "message": "later"}},
                              {"Retry-After": "1"}), held)
    config = write_config(tmp_path, portal, {})
    state = StateDir(str(tmp_path / "state"))
    state.write_credential({**state.read_credential(), "poll_wait": 1})
    process = subprocess.Popen(
        [PYTHON, "-m", "fujissl_agent", "serve", "--config", str(config)],
        env={**os.environ, "PYTHONPATH": str(AGENT_DIR)}, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 15
        while len(portal.posted("checkin")) < 4 and time.monotonic() < deadline:
            time.sleep(0.05)
        process.send_signal(signal.SIGTERM)
        _out, err = process.communicate(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0, err
    assert "rate limited" in err
    bodies = portal.posted("checkin")
    assert len(bodies) >= 4
    assert all(b["mode"] == "serve" and b["wait"] == 1 for b in bodies)
    # Retry-After: 1 was honoured; then each held answer was followed at once
    # by the next check-in.
    times = portal.times
    assert times[1] - times[0] >= 1.0
    assert all(0.9 <= later - earlier < 2.5 for earlier, later in zip(times[1:], times[2:]))


def test_serve_waits_for_a_portal_out_of_reach(tmp_path, portal, monkeypatch):
    if not IN_PROCESS:
        pytest.skip("shortens the wait in this process")
    monkeypatch.setattr(runner, "BACKOFF_FIRST", 0.1)
    config = write_config(tmp_path, portal, {})
    state = StateDir(str(tmp_path / "state"))
    state.write_credential({**state.read_credential(),
                            "url": f"https://127.0.0.1:{free_port()}"})
    started = time.monotonic()
    assert run_agent("serve", "--config", str(config), "--max-check-ins", "3") == 0
    assert time.monotonic() - started < 5
    assert "connection refused" in state.read_state()["last_checkin_error"]["error"]


def test_serve_stops_with_3_when_the_credential_is_revoked(tmp_path, portal, capsys):
    portal.answer("checkin", (401, {"error": {"code": "credential_revoked", "message": "x"}}))
    config = write_config(tmp_path, portal, {})
    assert run_agent("serve", "--config", str(config), "--max-check-ins", "5") == 3
    assert len(portal.posted("checkin")) == 1
    assert "revoked" in capsys.readouterr().err


def test_status_shows_what_is_installed(tmp_path, portal, ca, capsys):
    files = tmp_path / "files"
    files.mkdir()
    entry = install_entry(ca)
    portal.answer("checkin", check_in_answer([entry]))
    portal.answer("reports", (200, {}))
    config = write_config(tmp_path, portal, {NAME: {
        "private_key": f"{files}/k.pem", "certificate": f"{files}/c.pem",
        "backup_dir": str(tmp_path / "backup"), "tls_check": "none"}})
    assert run_agent("run", "--config", str(config)) == 0
    assert portal.posted("reports")[0]["outcome"] == "deployed"
    capsys.readouterr()

    assert run_agent("status", "--config", str(config)) == 0
    out = capsys.readouterr().out
    assert f"[{NAME}]" in out
    assert f"fingerprint: {entry['fingerprint']}" in out
    assert "not after:   20" in out
    assert "last check-in: 20" in out
    assert "last outcome: deployed" in out

    assert run_agent("status", "--json", "--config", str(config)) == 0
    report = json.loads(capsys.readouterr().out)
    record = report["certificates"][NAME]
    assert record["fingerprint"] == entry["fingerprint"]
    leaf = x509.load_pem_x509_certificate(entry["files"]["certificate"].encode())
    assert record["not_after"] == leaf.not_valid_after_utc.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert report["host"] == {"id": 7, "name": "web1"}


def test_status_shows_the_last_failure(tmp_path, portal, ca, capsys):
    files = tmp_path / "files"
    files.mkdir()
    portal.answer("checkin", check_in_answer([install_entry(ca)]))
    portal.answer("reports", (200, {}))
    config = write_config(tmp_path, portal, {NAME: {
        "private_key": f"{files}/k.pem", "certificate": f"{files}/c.pem",
        "backup_dir": str(tmp_path / "backup"), "tls_check": "none", "config_test": "false"}})
    assert run_agent("run", "--config", str(config)) == 1
    capsys.readouterr()
    assert run_agent("status", "--config", str(config)) == 0
    out = capsys.readouterr().out
    assert "last failure: 20" in out and "(rolled_back, request 17)" in out
    assert "config_test (false) failed" in out


def test_status_says_when_the_file_was_changed_since(tmp_path, portal, ca, capsys):
    files = tmp_path / "files"
    files.mkdir()
    entry = install_entry(ca)
    portal.answer("checkin", check_in_answer([entry]))
    portal.answer("reports", (200, {}))
    config = write_config(tmp_path, portal, {NAME: {
        "private_key": f"{files}/k.pem", "certificate": f"{files}/c.pem",
        "backup_dir": str(tmp_path / "backup"), "tls_check": "none"}})
    assert run_agent("run", "--config", str(config)) == 0
    _key, other_pem, _chain, other = issue(ca)
    (files / "c.pem").write_text(other_pem)  # replaced by hand
    capsys.readouterr()
    assert run_agent("status", "--config", str(config)) == 0
    out = capsys.readouterr().out
    assert f"fingerprint: {other} (the file was changed since the agent installed " \
           f"{entry['fingerprint']})" in out
