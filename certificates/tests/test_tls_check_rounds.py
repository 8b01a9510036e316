"""The TLS check's rounds on a loaded host, where one round over a large batch
takes seconds. A real nginx cannot be made to answer this slowly, or to flip
between two leaves, on cue: the handshake (``tls.served_leaf_sha256``) is the
seam here, and the installer is given a clock that moves only when the code
sleeps or a handshake costs some. Real handshakes are test_deployment's."""

from types import SimpleNamespace

import pytest

from certificates.hosts import installer
from certificates.seams import tls

OLD, NEW = "0" * 64, "1" * 64


class Clock:
    """Time that passes only when the code sleeps or a handshake costs some."""

    def __init__(self):
        self.now = 0.0

    def monotonic(self):
        return self.now

    def sleep(self, seconds):
        self.now += seconds


@pytest.fixture
def clock(settings):
    settings.DEPLOY_TLS_GRACE_SECONDS = 5
    return Clock()


def items(count, reports):
    def report(sni):
        return lambda name, status, detail="": reports.append((sni, name, status, detail))
    return [installer.Item(version=SimpleNamespace(fingerprint_sha256=NEW), files=[],
                           sni=f"c{i}.example.test", report=report(f"c{i}.example.test"),
                           label=f"c{i}")
            for i in range(count)]


def check(batch, clock):
    host = SimpleNamespace(tls_check_address="127.0.0.1", address="127.0.0.1",
                           tls_check_port=443)
    installer.Installer(session=None, host=host, items=batch, clock=clock).tls_check(batch)


def serve(monkeypatch, clock, leaf, seconds_per_handshake):
    def handshake(address, port, sni, *, timeout):
        clock.now += seconds_per_handshake
        return leaf(sni, clock.now)
    monkeypatch.setattr(tls, "served_leaf_sha256", handshake)


def test_a_leaf_that_appears_as_the_grace_period_ends_is_confirmed_not_rolled_back(
    monkeypatch, clock
):
    # Ten names at 0.4 s a handshake: a round takes 4 s, so the second round
    # (the first to see every new leaf) ends past the 5 s grace period.
    serve(monkeypatch, clock, lambda sni, now: NEW if now >= 3 else OLD, 0.4)
    reports = []
    batch = items(10, reports)
    check(batch, clock)
    assert [item.error for item in batch] == [None] * 10
    assert all(item.served == NEW for item in batch)
    assert sorted(sni for sni, name, status, _ in reports if status == "done") == sorted(
        item.sni for item in batch)


def test_a_leaf_still_old_when_the_grace_period_ends_fails_and_names_the_leaf_served(
    monkeypatch, clock
):
    serve(monkeypatch, clock, lambda sni, now: OLD, 0.4)
    batch = items(3, [])
    check(batch, clock)
    for item in batch:
        assert item.error.kind == "NotServed" and item.error.served_fingerprint == OLD
        assert f"still serves the leaf {OLD} instead of the deployed {NEW}" in str(item.error)
    assert clock.now < 5 + 3 * 1.3  # it stops waiting: at most a round past the grace period


def test_a_host_that_keeps_flipping_between_leaves_fails_after_a_bounded_wait(
    monkeypatch, clock
):
    # Every other handshake meets an old worker: never three in a row.
    answers = iter([NEW, OLD] * 1000)
    serve(monkeypatch, clock, lambda sni, now: next(answers), 0.1)
    batch = items(1, [])
    check(batch, clock)
    (item,) = batch
    assert item.error.kind == "NotServed"
    assert "only now and then" in str(item.error)
    # Rolled back: the old leaf is served again, so the new one is not recorded as served.
    assert item.error.served_fingerprint == "" and item.served == ""
    assert clock.now < 5 + 2


def test_a_check_the_policy_refuses_fails_at_once_without_waiting_out_the_grace_period(
    monkeypatch, clock
):
    handshakes = []

    def refused(address, port, sni, *, timeout):
        handshakes.append(sni)
        error = tls.TLSCheckError("not allowed by the portal's outbound policy")
        error.transient = False
        raise error

    monkeypatch.setattr(tls, "served_leaf_sha256", refused)
    batch = items(2, [])
    check(batch, clock)
    assert clock.now == 0  # nobody slept: waiting does not change a refusal
    assert len(handshakes) == 2
    for item in batch:
        assert not item.error.transient and "outbound policy" in str(item.error)
