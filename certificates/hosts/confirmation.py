"""The TLS confirmation rounds after a reload: handshake after handshake until
each new leaf has been served several times in a row, within a grace period,
on a clock the installer is given (tests give one that only moves when asked)."""

from __future__ import annotations

from django.conf import settings

from certificates.hosts.items import InstallFailed, Item, OnHost
from certificates.messages import message
from certificates.seams import tls
from certificates.seams.errors import FailureKind
from certificates.steps import Step, StepStatus

# Seconds between handshakes while waiting for a reload: short at first (nginx
# usually takes a tenth of a second), doubling up to a second.
TLS_RETRY_FIRST, TLS_RETRY_MAX = 0.05, 1.0


# Right after a reload, nginx's old workers may still answer some handshakes with
# the old leaf: the new one must come back this many times in a row.
TLS_CONFIRMATIONS = 3


class Rounds:
    """Where a TLS check over several items stands: the confirmations in a row
    of each item still waiting, the latest handshake of each, and the items
    given up on. See ``Installer.tls_check``."""

    def __init__(self, items: list[Item]) -> None:
        self.waiting = {item: 0 for item in items}
        self.last: dict[Item, tuple[str, tls.TLSCheckError | None]] = {}
        self.seen: set[Item] = set()  # items whose new leaf came back at least once
        self.given_up: list[Item] = []
        self.rounds_after_deadline = 0

    def record(self, item: Item, served: str, error: tls.TLSCheckError | None) -> bool:
        """One handshake's result; True when it confirms the item's new leaf."""
        self.last[item] = served, error
        if error is not None and not error.transient:
            # An address the outbound policy refuses, a name that cannot be sent:
            # no wait within the grace period changes that.
            self._give_up(item)
            return False
        new = served == item.version.fingerprint_sha256
        self.waiting[item] = self.waiting[item] + 1 if new else 0
        if new:
            self.seen.add(item)
        if self.waiting[item] < TLS_CONFIRMATIONS:
            return False
        del self.waiting[item]
        return True

    def past_deadline(self) -> None:
        """A round ended after the grace period: an item whose leaf is being
        confirmed may finish, within TLS_CONFIRMATIONS more rounds; the others
        are given up on."""
        for item in [item for item, streak in self.waiting.items() if not streak]:
            self._give_up(item)
        self.rounds_after_deadline += 1
        if self.rounds_after_deadline > TLS_CONFIRMATIONS:
            for item in list(self.waiting):
                self._give_up(item)

    def confirming(self) -> bool:
        return any(self.waiting.values())

    def _give_up(self, item: Item) -> None:
        self.given_up.append(item)
        del self.waiting[item]


class TLSConfirmation(OnHost):
    """The TLS check of an Installer (which provides host, heartbeat, clock and
_report)."""

    def tls_check(self, items: list[Item]) -> None:
        """Handshake, round after round over the items still waiting, until each
        new leaf has been served TLS_CONFIRMATIONS times in a row. Sets ``served``
        or ``error`` on each item.

        The grace period bounds the wait for a new leaf to appear. An item whose
        leaf is already being confirmed when it ends may finish, within
        TLS_CONFIRMATIONS more rounds: a round over a large batch on a loaded
        host can take seconds, and failing (then rolling back) a certificate
        that is being served would be wrong."""
        self._report(items, Step.TLS_CHECK, StepStatus.STARTED)
        self.heartbeat(waiting=True)
        deadline = self.clock.monotonic() + settings.DEPLOY_TLS_GRACE_SECONDS
        rounds = Rounds(items)
        pause = TLS_RETRY_FIRST
        while True:
            self._tls_round(rounds)
            if rounds.waiting and self.clock.monotonic() >= deadline:
                rounds.past_deadline()
            if not rounds.waiting:
                break
            if rounds.confirming():
                self.clock.sleep(TLS_RETRY_FIRST)  # confirming: a short, steady pace
                continue
            # Waiting for the reload to take: show what is confirmed so far.
            self.heartbeat(waiting=True)
            self.clock.sleep(min(pause, max(deadline - self.clock.monotonic(), 0)))
            pause = min(pause * 2, TLS_RETRY_MAX)
        for item in rounds.given_up:
            served, error = rounds.last[item]
            item.error = self._not_served(item, served, error, seen=item in rounds.seen)
            item.report(Step.TLS_CHECK, StepStatus.FAILED, item.error)

    def _tls_round(self, rounds: Rounds) -> None:
        for item in list(rounds.waiting):
            self.heartbeat()  # a round over many names may outlast one lease
            served, error = self._handshake(item)
            if rounds.record(item, served, error):
                item.served = served
                item.report(Step.TLS_CHECK, StepStatus.DONE, served)

    def _handshake(self, item: Item) -> tuple[str, tls.TLSCheckError | None]:
        """The leaf the host serves for the item's name, or why there was none."""
        address = self.host.tls_check_address or self.host.address
        try:
            return tls.served_leaf_sha256(address, self.host.tls_check_port, item.sni,
                                          timeout=settings.TLS_CHECK_TIMEOUT), None
        except tls.TLSCheckError as exc:
            return "", exc

    def _not_served(self, item: Item, served: str, error: tls.TLSCheckError | None, *,
                    seen: bool) -> InstallFailed:
        address = self.host.tls_check_address or self.host.address
        where = {"address": address, "port": self.host.tls_check_port,
                 "expected": item.version.fingerprint_sha256, "served": served,
                 "seconds": f"{settings.DEPLOY_TLS_GRACE_SECONDS:g}"}
        if error is not None:
            return InstallFailed(error, kind=error.kind, transient=error.transient)
        if seen:  # but never the times in a row it takes
            return InstallFailed(
                message("tls.flapping", **where),
                # No fingerprint: rolled back, the host serves the old leaf again,
                # and recording this one would mark the deployment as served.
                kind=FailureKind.NOT_SERVED,
            )
        return InstallFailed(
            message("tls.not_served", **where),
            kind=FailureKind.NOT_SERVED, served_fingerprint=served,
        )
