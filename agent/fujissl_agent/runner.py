"""One check-in and the work it brings (docs/agent-protocol.md, sections 2 to
5): challenge files first (the portal answers the CA once they are written),
then CSRs for keys made here, then the installations, each reported; and
``serve``'s loop of check-ins with long polling."""

from __future__ import annotations

import logging
import random
import signal
import threading
import time
from typing import Any

from . import __version__, certs, challenges, keys
from .client import Portal, PortalRefused, PortalUnreachable
from .config import CertificateConfig, Config
from .errors import CREDENTIAL_REFUSED, FAILURE, AgentError
from .install import Installer
from .state import StateDir, now
from .steps import DEPLOYED, Item

log = logging.getLogger("fujissl_agent")

MAX_WAIT = 30
BACKOFF_FIRST, BACKOFF_MAX = 5.0, 300.0
RATE_LIMITED_DEFAULT = 60.0
CREDENTIAL_CODES = ("credential_revoked", "credential_unknown")


def refusal_error(exc: PortalRefused) -> AgentError:
    """The protocol's refusals as the errors that end a command."""
    if exc.code == "credential_revoked":
        return AgentError("the portal revoked this host's credential; enrol again",
                          CREDENTIAL_REFUSED)
    if exc.code in CREDENTIAL_CODES or exc.status == 401:
        return AgentError(f"the portal does not know this host's credential ({exc.message}); "
                          "enrol again", CREDENTIAL_REFUSED)
    return AgentError(f"the portal refused: {exc}", FAILURE)


class Agent:
    """The agent of one enrolled host: its configuration, state folder and
    credential."""

    def __init__(self, config: Config, state: StateDir, credential: dict[str, Any]) -> None:
        self.config, self.state = config, state
        self.portal = Portal(credential["url"], token=credential["token"],
                             ca_file=config.ca_file or credential.get("ca_file", ""))
        self.data = state.read_state()
        self.poll_wait = int(credential.get("poll_wait") or 0)
        self.interval = config.interval

    # -- one check-in --------------------------------------------------------

    def check_in(self, mode: str, wait: int = 0) -> bool:
        """Check in once and do the work the answer brings; True if all of it
        went well. Raises PortalUnreachable and PortalRefused."""
        self.deliver_reports()
        return self.handle(self.send_check_in(mode, wait))

    def send_check_in(self, mode: str, wait: int) -> dict[str, Any]:
        """``POST /agent/v1/checkin``; its answer (kept: when, and the
        portal's interval and poll_wait)."""
        wait = max(0, min(MAX_WAIT, wait))
        body = {"agent_version": __version__, "mode": mode, "interval": self.config.interval,
                "wait": wait, "certificates": self.certificates()}
        try:
            answer = self.portal.post("checkin", body, timeout=wait + 30)
        except (PortalUnreachable, PortalRefused) as exc:
            self.data["last_checkin_error"] = {"at": now(), "error": str(exc)}
            self.save()
            raise
        self.data["last_checkin"] = now()
        self.data.pop("last_checkin_error", None)
        self.save()
        work = answer.get("challenges") or {}
        log.info("checked in (%s): %d to install, %d challenge files to write, %d to remove, "
                 "%d CSRs asked", mode, len(answer.get("install") or []),
                 len(work.get("write") or []), len(work.get("remove") or []),
                 len(answer.get("csr") or []))
        self.poll_wait = _number(answer.get("poll_wait"), self.poll_wait, 0, MAX_WAIT)
        self.interval = _number(answer.get("interval"), self.interval, 10, 86400)
        return answer

    def certificates(self) -> dict[str, dict[str, Any]]:
        described = {}
        for name, section in self.config.certificates.items():
            csr = keys.pending(self.state, section) if section.key_on_host else None
            described[name] = {
                "document_root": bool(section.document_root),
                "key_on_host": section.key_on_host,
                "installed_fingerprint": _installed_fingerprint(section),
                "csr": csr.decode() if csr else "",
            }
        return described

    def handle(self, answer: dict[str, Any]) -> bool:
        ok = True
        work = answer.get("challenges") or {}
        if work.get("write") or work.get("remove"):
            done = challenges.handle(self.config, work)
            ok = not done["failed"]
            self._post_quietly("challenges", done)
        for wanted in answer.get("csr") or []:
            # {"certificate", "names"}: the portal names what the CSR must hold
            # (a bare name from an older portal: the section's own names).
            if isinstance(wanted, dict):
                ok = self.send_csr(str(wanted.get("certificate", "")),
                                   _names(wanted.get("names"))) and ok
            else:
                ok = self.send_csr(str(wanted)) and ok
        for batch in _batches(answer.get("install") or []):
            ok = self.install(batch) and ok
        return ok

    def _post_quietly(self, path: str, body: dict[str, Any]) -> bool:
        """POST what the portal will also learn at the next check-in."""
        try:
            self.portal.post(path, body)
        except PortalUnreachable as exc:
            log.warning("could not tell the portal (%s): %s", path, exc)
            return False
        except PortalRefused as exc:
            if exc.code in CREDENTIAL_CODES:
                raise
            log.warning("the portal refused %s: %s", path, exc)
            return False
        return True

    # -- keys made here ------------------------------------------------------

    def send_csr(self, name: str, names: list[str] | None = None) -> bool:
        section = self.config.certificates.get(name)
        if section is None or not section.key_on_host:
            log.warning("the portal asks for a CSR for [%s], but %s", name,
                        "there is no such section" if section is None else
                        "its section does not say key_on_host = yes")
            return False
        try:
            if names:
                self.data.setdefault("names", {})[name] = names
                self.save()
            csr = keys.pending(self.state, section) or keys.make_next(
                self.state, section, self._names_of(section))
        except AgentError as exc:
            log.error("[%s] could not make a key and CSR: %s", name, exc)
            return False
        return self._post_csr(section, csr)

    def _post_csr(self, section: CertificateConfig, csr: bytes) -> bool:
        try:
            self.portal.post("csr", {"certificate": section.name, "csr": csr.decode()})
        except PortalUnreachable as exc:
            log.warning("[%s] the CSR waits for the next check-in: %s", section.name, exc)
            return False
        except PortalRefused as exc:
            if exc.code in CREDENTIAL_CODES or exc.status == 401:
                raise
            # A CSR the portal will not use: the next one is made afresh when asked.
            keys.forget_next(self.state, section)
            log.error("[%s] the portal refused the CSR: %s; alt_names in [%s] must list the "
                      "certificate's other names", section.name, exc.message, section.name)
            return False
        return True

    def _names_of(self, section: CertificateConfig) -> list[str] | None:
        """The names the portal last gave for this certificate, if any."""
        return (self.data.get("names") or {}).get(section.name)

    def _next_key(self, section: CertificateConfig) -> None:
        keys.forget_next(self.state, section)
        try:
            csr = keys.make_next(self.state, section, self._names_of(section))
        except AgentError as exc:
            log.error("[%s] could not make the next key and CSR: %s", section.name, exc)
            return
        self._post_csr(section, csr)

    # -- installations -------------------------------------------------------

    def install(self, entries: list[dict[str, Any]]) -> bool:
        items = [Item.from_portal(entry, self.config) for entry in entries]
        Installer(self.config, self.state).install(items)
        for item in items:
            self._remember(item)
            self.data["pending_reports"].append(item.report())
            self.save()
            if item.outcome == DEPLOYED and item.key_from_host and item.section:
                self._next_key(item.section)
        self.deliver_reports()
        return all(item.outcome == DEPLOYED for item in items)

    def _remember(self, item: Item) -> None:
        record = self.data["certificates"].setdefault(item.name, {})
        record.update({"last_request": item.request, "last_outcome": item.outcome,
                       "last_outcome_at": now()})
        if item.outcome == DEPLOYED:
            der = certs.leaf_der((item.given.get("certificate") or item.given.get("fullchain")
                                  or "").encode())
            record.update({"fingerprint": item.fingerprint, "installed_at": now(),
                           "not_after": certs.not_after(der) if der else ""})
            log.info("[%s] deployed %s", item.name, item.fingerprint)
        else:
            record["last_failure"] = {"at": now(), "request": item.request,
                                      "outcome": item.outcome, "error": item.error}
            log.error("[%s] %s: %s", item.name, item.outcome.replace("_", " "),
                      item.error.splitlines()[0] if item.error else "")

    def deliver_reports(self) -> None:
        """Send the reports not yet delivered (kept in state.json until then)."""
        while self.data["pending_reports"]:
            report = self.data["pending_reports"][0]
            try:
                self.portal.post("reports", report)
            except PortalUnreachable as exc:
                log.warning("the report on request %s waits for the portal: %s",
                            report.get("request"), exc)
                return
            except PortalRefused as exc:
                if exc.code in CREDENTIAL_CODES or exc.status == 401:
                    raise
                log.warning("the portal refused the report on request %s: %s",
                            report.get("request"), exc)
            self.data["pending_reports"].pop(0)
            self.save()

    def save(self) -> None:
        self.state.write_state(self.data)


def _number(value: Any, default: int, low: int, high: int) -> int:
    try:
        return max(low, min(high, int(value)))
    except (TypeError, ValueError):
        return default


def _installed_fingerprint(section: CertificateConfig) -> str:
    path = section.paths.get("certificate") or section.paths.get("fullchain", "")
    return certs.file_fingerprint(path)


def _batches(entries: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """The versions to install, oldest first, in batches that hold each
    certificate once: a second version of one certificate goes in the next."""
    batches: list[list[dict[str, Any]]] = []
    for entry in entries:
        if not isinstance(entry, dict):
            continue
        for batch in batches:
            if all(other.get("certificate") != entry.get("certificate") for other in batch):
                batch.append(entry)
                break
        else:
            batches.append([entry])
    return batches


# -- serve -------------------------------------------------------------------

class _Stop(Exception):
    pass


class Server:
    """``serve``: check in again and again, the portal holding each answer up
    to ``poll_wait`` seconds; waits and tries again while the portal cannot be
    reached; honours ``Retry-After``. SIGTERM or SIGINT stop it between two
    pieces of work (never in the middle of an installation)."""

    def __init__(self, agent: Agent) -> None:
        self.agent = agent
        self.stopping = threading.Event()
        self.interruptible = False

    def _signal(self, signum: int, _frame: object) -> None:
        log.info("signal %d: stopping", signum)
        self.stopping.set()
        if self.interruptible:
            raise _Stop()

    def run(self, *, max_check_ins: int | None = None) -> None:
        previous = {sig: signal.signal(sig, self._signal)
                    for sig in (signal.SIGTERM, signal.SIGINT)}
        try:
            self._loop(max_check_ins)
        except _Stop:
            pass
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        log.info("stopped")

    def _loop(self, max_check_ins: int | None) -> None:
        backoff, count = 0.0, 0
        while not self.stopping.is_set():
            count += 1
            try:
                pause = self._once()
                backoff = 0.0
            except PortalUnreachable as exc:
                backoff = min(max(BACKOFF_FIRST, backoff * 2), BACKOFF_MAX,
                              max(BACKOFF_FIRST, float(self.agent.config.interval)))
                pause = backoff * random.uniform(0.9, 1.1)
                log.warning("the portal cannot be reached (%s); trying again in %.0f s",
                            exc, pause)
            except PortalRefused as exc:
                if exc.code != "rate_limited":
                    raise refusal_error(exc) from None
                pause = exc.retry_after if exc.retry_after is not None else RATE_LIMITED_DEFAULT
                log.warning("the portal asks to wait %.0f s (rate limited)", pause)
            if max_check_ins is not None and count >= max_check_ins:
                return
            self._sleep(pause)

    def _once(self) -> float:
        """One check-in and its work; the pause before the next."""
        wait = self.agent.poll_wait
        started = time.monotonic()
        self.interruptible = True
        try:
            self.agent.deliver_reports()
            answer = self.agent.send_check_in("serve", wait)
        finally:
            self.interruptible = False
        if self.stopping.is_set():
            return 0.0
        worked = bool(answer.get("install") or answer.get("csr")
                      or any((answer.get("challenges") or {}).values()))
        self.agent.handle(answer)
        if worked:
            return 0.0
        if wait and time.monotonic() - started >= wait / 2:
            return 0.5  # the portal held the answer: ask again at once
        return float(self.agent.interval)

    def _sleep(self, seconds: float) -> None:
        self.interruptible = True
        try:
            self.stopping.wait(max(0.0, seconds))
        finally:
            self.interruptible = False


def _names(value: Any) -> list[str] | None:
    if isinstance(value, list) and value and all(isinstance(n, str) for n in value):
        return [str(n) for n in value]
    return None
