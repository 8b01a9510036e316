"""The state folder: one run at a time (the lock), the credential readable by
its owner only, the rotating log."""

from __future__ import annotations

import stat

from fujissl_agent.state import Lock, StateDir

from .helpers import NAME, agent_process, check_in_answer, write_config


def test_a_second_run_is_refused_while_the_first_holds_the_lock(tmp_path, portal):
    portal.answer("checkin", check_in_answer())
    config = write_config(tmp_path, portal, {NAME: {
        "private_key": str(tmp_path / "k.pem"), "certificate": str(tmp_path / "c.pem"),
        "backup_dir": str(tmp_path / "backup")}})
    state = StateDir(str(tmp_path / "state"))
    with Lock(state.lock_path):
        second = agent_process("run", "--config", str(config))
    assert second.returncode == 1
    assert "another fujissl-agent (process " in second.stderr
    assert "this one stops" in second.stderr
    assert portal.posted("checkin") == []  # it did not check in
    # Once the first is done, a run goes ahead.
    third = agent_process("run", "--config", str(config))
    assert third.returncode == 0, third.stderr
    assert len(portal.posted("checkin")) == 1


def test_the_credential_is_private_from_its_creation(tmp_path):
    state = StateDir(str(tmp_path / "state"))
    state.create()
    state.write_credential({"url": "https://p", "token": "t"})
    assert stat.S_IMODE((tmp_path / "state" / "credential.json").stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "state").stat().st_mode) == 0o700
    assert state.read_credential() == {"url": "https://p", "token": "t"}


def test_the_log_is_written_in_the_state_folder(tmp_path, portal):
    portal.answer("checkin", check_in_answer())
    config = write_config(tmp_path, portal, {})
    assert agent_process("run", "--config", str(config)).returncode == 0
    log = (tmp_path / "state" / "logs" / "agent.log").read_text()
    assert log  # the run left its trace
