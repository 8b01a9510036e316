"""The files the portal serves (agent/build.py), and ``upgrade``, which takes
the single-file agent from the portal only when its checksum matches."""

from __future__ import annotations

import ast
import hashlib
import os
import shutil
import stat
import subprocess
import sys
import zipfile
from pathlib import Path

from agent.build import build_all, build_zipapp

from .helpers import AGENT_DIR, PYTHON, run_agent, write_config


def sums(folder: Path) -> dict[str, str]:
    lines = (folder / "SHA256SUMS").read_text().splitlines()
    return {line.split("  ")[1]: line.split("  ")[0] for line in lines}


def test_the_zipapp_and_the_wheel_with_their_checksums(tmp_path):
    out = tmp_path / "dist"
    zipapp_path, wheel_path, sums_path = build_all(out)
    assert zipapp_path == out / "fujissl-agent.pyz"
    assert zipapp_path.read_bytes().startswith(b"#!/usr/bin/env python3\n")
    assert os.access(zipapp_path, os.X_OK)
    assert sums(out) == {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
                         for p in (zipapp_path, wheel_path)}
    checked = subprocess.run(["sha256sum", "-c", "SHA256SUMS"], cwd=out, capture_output=True,
                             text=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    version = subprocess.run([sys.executable, str(zipapp_path), "--version"],
                             capture_output=True, text=True, timeout=30)
    assert version.stdout.strip() == "fujissl-agent 1.0.0"
    # The build takes the package's modules as they are on disk: a module split
    # off another is in the archive without anyone listing it.
    modules = {f"fujissl_agent/{p.name}" for p in (AGENT_DIR / "fujissl_agent").glob("*.py")}
    with zipfile.ZipFile(zipapp_path) as pyz:
        assert modules <= set(pyz.namelist())
    with zipfile.ZipFile(wheel_path) as wheel:
        names = wheel.namelist()
        assert "fujissl_agent/cli.py" in names
        entry_points = wheel.read("fujissl_agent-1.0.0.dist-info/entry_points.txt").decode()
        assert "fujissl-agent = fujissl_agent.cli:main" in entry_points
        assert "Requires-Python: >=3.9" in wheel.read(
            "fujissl_agent-1.0.0.dist-info/METADATA").decode()
        assert not any("tests" in name for name in names)
    # The same sources, the same bytes: the checksums change only with the agent.
    again = build_zipapp(tmp_path / "again")
    assert again.read_bytes() == zipapp_path.read_bytes()


def test_every_module_is_python_3_9_syntax():
    for path in sorted((AGENT_DIR / "fujissl_agent").glob("*.py")) + [AGENT_DIR / "build.py"]:
        source = path.read_text()
        ast.parse(source, filename=str(path), feature_version=(3, 9))
        assert "from __future__ import annotations" in source or path.name == "__init__.py", path


def served_pyz(tmp_path: Path) -> bytes:
    """A build of the agent whose bytes differ from the one installed."""
    build = build_zipapp(tmp_path / "new")
    with zipfile.ZipFile(build, "a") as bundle:
        bundle.comment = b"newer"
    return build.read_bytes()


def test_upgrade_replaces_the_running_zipapp(tmp_path, portal):
    installed = tmp_path / "bin" / "fujissl-agent.pyz"
    installed.parent.mkdir()
    shutil.copy(build_zipapp(tmp_path / "old"), installed)
    installed.chmod(0o755)
    new = served_pyz(tmp_path)
    portal.answer("/agent/download/fujissl-agent.pyz", (200, new))
    portal.answer("/agent/download/SHA256SUMS",
                  (200, f"{hashlib.sha256(new).hexdigest()}  fujissl-agent.pyz\n".encode()))
    config = write_config(tmp_path, portal, {})

    done = subprocess.run([PYTHON, str(installed), "upgrade", "--config", str(config)],
                          capture_output=True, text=True, timeout=60)

    assert done.returncode == 0, done.stderr
    assert installed.read_bytes() == new
    assert stat.S_IMODE(installed.stat().st_mode) == 0o755
    assert f"{installed} is now version 1.0.0" in done.stdout
    assert [p.name for p in installed.parent.iterdir()] == ["fujissl-agent.pyz"]


def test_upgrade_refuses_a_file_whose_checksum_does_not_match(tmp_path, portal, capsys):
    installed = tmp_path / "fujissl-agent.pyz"
    installed.write_bytes(b"the installed agent")
    new = served_pyz(tmp_path)
    portal.answer("/agent/download/fujissl-agent.pyz", (200, new[:-1] + b"X"))
    portal.answer("/agent/download/SHA256SUMS",
                  (200, f"{hashlib.sha256(new).hexdigest()}  fujissl-agent.pyz\n".encode()))
    config = write_config(tmp_path, portal, {})

    code = run_agent("upgrade", "--path", str(installed), "--config", str(config))

    assert code == 1
    err = capsys.readouterr().err
    assert "refused: the SHA-256 of the downloaded fujissl-agent.pyz" in err
    assert "nothing was replaced" in err
    assert installed.read_bytes() == b"the installed agent"


def test_upgrade_outside_a_zipapp_says_to_use_pip(tmp_path, portal, capsys):
    config = write_config(tmp_path, portal, {})
    assert run_agent("upgrade", "--config", str(config)) == 1
    assert "upgrade the package with pip" in capsys.readouterr().err
