"""HTTP-01 files: written and removed under the document root, anything else
refused, and never through a symbolic link."""

from __future__ import annotations

import os

import pytest

from fujissl_agent import challenges

from .helpers import NAME, check_in_answer, run_agent, write_config

TOKEN = "tok_en-123"
PATH = f".well-known/acme-challenge/{TOKEN}"


def test_write_and_remove(tmp_path):
    root = tmp_path / "www"
    root.mkdir()
    umask = os.umask(0o077)  # as under the systemd units' UMask=0077
    try:
        challenges.write(str(root), PATH, "tok_en-123.thumb")
    finally:
        os.umask(umask)
    written = root / PATH
    assert written.read_text() == "tok_en-123.thumb"
    # The web server, another user, reads the file through the new folders.
    assert oct(written.stat().st_mode & 0o777) == oct(0o644)
    assert oct(written.parent.stat().st_mode & 0o777) == oct(0o755)
    assert oct(written.parent.parent.stat().st_mode & 0o777) == oct(0o755)
    challenges.remove(str(root), PATH)
    assert not written.exists()
    challenges.remove(str(root), PATH)  # already gone: fine


@pytest.mark.parametrize("path", [
    "../etc/passwd", ".well-known/acme-challenge/../../x", ".well-known/acme-challenge/a/b",
    "/.well-known/acme-challenge/x", ".well-known/acme-challenge/", "index.html",
    ".well-known/acme-challenge/x.y", ".well-known/other/x",
])
def test_any_other_path_is_refused(tmp_path, path):
    with pytest.raises(challenges.ChallengeRefused, match="refused the path"):
        challenges.write(str(tmp_path), path, "x")
    with pytest.raises(challenges.ChallengeRefused, match="refused the path"):
        challenges.remove(str(tmp_path), path)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("link", [".well-known", ".well-known/acme-challenge"])
def test_a_symbolic_link_out_of_the_document_root_is_not_followed(tmp_path, link):
    root, outside = tmp_path / "www", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    (outside / "acme-challenge").mkdir()
    (outside / TOKEN).write_text("keep me")
    (outside / "acme-challenge" / TOKEN).write_text("keep me")
    if link == ".well-known/acme-challenge":
        (root / ".well-known").mkdir()
        os.symlink(outside, root / link)
    else:
        os.symlink(outside, root / link)
    with pytest.raises(challenges.ChallengeRefused, match="symbolic link"):
        challenges.write(str(root), PATH, "x")
    with pytest.raises(challenges.ChallengeRefused, match="symbolic link"):
        challenges.remove(str(root), PATH)
    assert (outside / TOKEN).read_text() == "keep me"
    assert (outside / "acme-challenge" / TOKEN).read_text() == "keep me"
    assert {p.name for p in outside.iterdir()} == {TOKEN, "acme-challenge"}


def test_a_check_in_writes_removes_and_acknowledges(tmp_path, portal):
    root = tmp_path / "www"
    (root / ".well-known" / "acme-challenge").mkdir(parents=True)
    (root / ".well-known" / "acme-challenge" / "old").write_text("old")
    portal.answer("checkin", check_in_answer(
        write=[{"id": 5, "certificate": NAME, "path": PATH, "content": f"{TOKEN}.abc"},
               {"id": 6, "certificate": NAME, "path": "../../etc/x", "content": "x"},
               {"id": 7, "certificate": "other.example.test", "path": PATH, "content": "x"}],
        remove=[{"id": 4, "certificate": NAME, "path": ".well-known/acme-challenge/old"}]))
    portal.answer("challenges", (200, {}))
    config = write_config(tmp_path, portal, {NAME: {
        "private_key": str(tmp_path / "k.pem"), "certificate": str(tmp_path / "c.pem"),
        "backup_dir": str(tmp_path / "backup"), "document_root": str(root)}})

    assert run_agent("run", "--config", str(config)) == 1  # some of the work failed

    (ack,) = portal.posted("challenges")
    assert ack["written"] == [5] and ack["removed"] == [4]
    failed = {f["id"]: f["error"] for f in ack["failed"]}
    assert "refused the path" in failed[6]
    assert "no section [other.example.test]" in failed[7]
    assert (root / PATH).read_text() == f"{TOKEN}.abc"
    assert not (root / ".well-known" / "acme-challenge" / "old").exists()
