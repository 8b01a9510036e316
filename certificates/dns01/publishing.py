"""An order's DNS-01 TXT records: where each goes (the end of the name's CNAME
chain, written with the credential whose zone holds that end), written, served
by every authoritative server of its zone, and removed value by value."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from django.conf import settings

from certificates.messages import Message, message
from certificates.models import Certificate, DNSCredential, RenewalRun
from certificates.seams import dns_lookup
from certificates.seams.errors import FailureKind, PortalError
from certificates.steps import Step, StepStatus

from .writers import lookup, writer

Artefact = dict[str, Any]


@dataclass(frozen=True)
class Placement:
    """Where the TXT record proving ``name`` goes."""

    name: str
    chain: tuple[str, ...]  # _acme-challenge.<name>, then each CNAME target
    credential: DNSCredential

    @property
    def target(self) -> str:
        return self.chain[-1]

    def describe(self) -> str:
        return " → ".join(self.chain) + f" ({self.credential.name})"


def best_credential(credentials: list[DNSCredential], name: str) -> DNSCredential | None:
    """The credential whose zone is the longest that holds ``name``."""
    scored = [(len(zone), c.pk, c) for c in credentials if (zone := c.zone_for(name))]
    return max(scored, key=lambda t: (t[0], -t[1]))[2] if scored else None


def place(certificate: Certificate, name: str,
          credentials: list[DNSCredential] | None = None) -> Placement:
    base = name[2:] if name.startswith("*.") else name
    chain = dns_lookup.cname_chain(lookup(), f"_acme-challenge.{base}")
    if credentials is None:
        credentials = list(certificate.dns_credentials.all())
    credential = best_credential(credentials, chain[-1])
    if credential is None:
        raise PortalError(message("challenge.no_credential_for", target=chain[-1], name=name),
                          transient=False, kind=FailureKind.DNS_ERROR)
    return Placement(name, tuple(chain), credential)


@contextmanager
def publish(run: RenewalRun, certificate: Certificate, records: list[tuple[str, str]], *,
            placed: Callable[[Artefact], None],
            removed: Callable[[list[Artefact]], None]) -> Iterator[None]:
    """``records``: (identifier, TXT value) each. Every value is written where
    its name's chain ends, then awaited on every authoritative server; all are
    removed afterwards, also after a failure."""
    credentials = list(certificate.dns_credentials.all())
    added: list[Artefact] = []
    try:
        # A wildcard and its base name share one _acme-challenge name: one lookup.
        by_base: dict[str, Placement] = {}
        placements = []
        for name, value in records:
            base = name.removeprefix("*.")
            if base not in by_base:
                by_base[base] = place(certificate, name, credentials)
            placements.append((by_base[base], value))
        for placement, value in placements:
            artefact = {"kind": "dns01", "record": placement.target, "value": value,
                        "credential": placement.credential.pk}
            placed(artefact)
            writer(placement.credential).add(placement.target, value)
            added.append(artefact)
        run.step(Step.CHALLENGE, StepStatus.DONE, message(
            "challenge.txt_placed", count=len(added),
            where="; ".join(sorted({p.describe() for p, _v in placements}))))
        _await_served(run, added)
        yield
    finally:
        remove(run, added, {c.pk: c for c in credentials}, removed=removed)


def _await_served(run: RenewalRun, added: list[Artefact]) -> None:
    expected: dict[str, set[str]] = {}
    for artefact in added:
        expected.setdefault(artefact["record"], set()).add(artefact["value"])
    where = lookup()
    for record, values in expected.items():
        servers = dns_lookup.nameservers(where, dns_lookup.zone_for(where, record))
        try:
            answered = dns_lookup.wait_until_served(where, servers, record, values,
                                                    timeout=settings.DNS_PROPAGATION_TIMEOUT)
        except dns_lookup.NotServed as exc:
            run.step(Step.CHALLENGE, StepStatus.FAILED, message(
                "challenge.txt_not_served", error=exc,
                served=timings(exc.answered) or message("none")))
            raise
        run.step(Step.CHALLENGE, StepStatus.DONE, message(
            "challenge.txt_served", name=record, servers=timings(answered)))


def timings(answered: dict[dns_lookup.Nameserver, float]) -> list[Message]:
    """Each server with the seconds it took to first serve the value."""
    return [message("challenge.server_after", server=str(s), seconds=t)
            for s, t in sorted(answered.items())]


def remove(run: RenewalRun, artefacts: list[Artefact], credentials: dict[int, DNSCredential],
           *, removed: Callable[[list[Artefact]], None]) -> None:
    """Each value deleted exactly (another order's value at the same name stays)."""
    failures: list[object] = []
    for artefact in artefacts:
        credential = credentials.get(artefact.get("credential", -1)) or best_credential(
            list(credentials.values()), artefact["record"])
        if credential is None:
            failures.append(message("challenge.no_credential_left", name=artefact["record"]))
            continue
        try:
            writer(credential).delete(artefact["record"], artefact["value"])
        except PortalError as exc:
            failures.append(exc)
        else:
            removed([artefact])
    if artefacts:
        run.step(Step.CLEANUP, StepStatus.FAILED if failures else StepStatus.DONE,
                 message("lines", lines=failures) if failures
                 else message("challenge.txt_removed"))
