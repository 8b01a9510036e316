"""The challenges of an order, published and removed: HTTP-01 files in every
host's document root over SSH, DNS-01 TXT records with the certificate's DNS
credentials. What a run
places is recorded on it before it is placed, so that whoever finishes the run
removes it, even after the worker that placed it died."""

from __future__ import annotations

import posixpath
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

from acme import messages

from certificates.dns01 import publishing
from certificates.messages import message
from certificates.models import Certificate, RenewalRun, TargetHost
from certificates.renewal import agent_wait
from certificates.seams import acme, ssh
from certificates.seams.errors import FailureKind, PortalError
from certificates.steps import Step, StepStatus

CHALLENGE_DIR = ".well-known/acme-challenge"

# What `acme.CA.pending_challenges` gives: (authorization, challenge body) each.
Pending = list[tuple[messages.AuthorizationResource, messages.ChallengeBody]]
# What a run placed (the JSON it records in ``RenewalRun.artefacts``).
Artefact = dict[str, Any]
# The challenge files written: each host, its session, the paths written there.
Written = list[tuple[TargetHost, ssh.Session, list[str]]]


@contextmanager
def publish_http01(run: RenewalRun, certificate: Certificate, ca: acme.CA,
                   pending: Pending) -> Iterator[None]:
    """Challenge files on every host of the certificate, removed afterwards even
    when validation fails; any host may be the one the name points at. Each
    host's session stays open while the CA validates, so that the files are
    removed through it rather than through a second login."""
    provers = list(certificate.hosts.filter(TargetHost.proves_http01()))
    hosts = [host for host in provers if not host.is_agent]
    agent_hosts = [host for host in provers if host.is_agent]
    if not provers:
        raise PortalError(message("challenge.no_document_root", name=certificate.common_name),
                          transient=False, kind=FailureKind.ISSUANCE_FAILED)
    files = [ca.http01_resource(body) for _authzr, body in pending]
    with ExitStack() as sessions:
        if agent_hosts:  # their agents write the files at their next check-in
            sessions.enter_context(agent_wait.challenge_files(
                run, agent_hosts, files, placed=lambda a: _placed(run, a),
                removed=lambda done: _removed(run, done)))
        written: Written = []
        try:
            for host in hosts:
                directory = posixpath.join(host.document_root, CHALLENGE_DIR)
                session = sessions.enter_context(ssh.connect(host))
                paths: list[str] = []
                written.append((host, session, paths))
                # A web application that writes in its document root could have
                # made .well-known a link leading anywhere: refused, not followed.
                session.makedirs_below(host.document_root, CHALLENGE_DIR)
                for token_path, content in files:
                    path = posixpath.join(host.document_root, token_path)
                    paths.append(path)
                    _placed(run, {"kind": "http01", "host": host.pk, "path": path})
                    session.write_file(path, content.encode(), mode=0o644)
                run.step(Step.CHALLENGE, StepStatus.DONE, message(
                    "challenge.files", count=len(files), dir=directory), host=host)
            yield
        finally:
            _remove_challenge_files(run, written)


def _remove_challenge_files(run: RenewalRun, written: Written) -> None:
    for host, session, paths in written:
        if not paths:
            continue
        try:
            try:
                for path in paths:
                    session.remove(path, missing_ok=True)
            except ssh.SSHError:
                # The session may have dropped while the CA validated: log in again.
                with ssh.connect(host) as fresh:
                    for path in paths:
                        fresh.remove(path, missing_ok=True)
            _removed(run, [{"kind": "http01", "host": host.pk, "path": p} for p in paths])
            run.step(Step.CLEANUP, StepStatus.DONE, message("challenge.files_removed"),
                     host=host)
        except ssh.SSHError as exc:
            # Not fatal: a stale token file reveals nothing and proves nothing.
            run.step(Step.CLEANUP, StepStatus.FAILED, exc, host=host)


@contextmanager
def publish_dns01(run: RenewalRun, certificate: Certificate, ca: acme.CA,
                  pending: Pending) -> Iterator[None]:
    """TXT records added (never replaced) with the certificate's DNS credentials
    and, afterwards, exactly they deleted (certificates/dns01/publishing.py)."""
    records = [(authzr.body.identifier.value,
                ca.dns01_record(body, authzr.body.identifier.value)[1])
               for authzr, body in pending]
    with publishing.publish(run, certificate, records, placed=lambda a: _placed(run, a),
                            removed=lambda done: _removed(run, done)):
        yield


def _placed(run: RenewalRun, artefact: Artefact) -> None:
    """Recorded on the run before it is placed, so that a worker killed right
    after leaves a trace for whoever ends the run."""
    if artefact not in run.artefacts:
        run.artefacts = [*run.artefacts, artefact]
        RenewalRun.objects.filter(pk=run.pk).update(artefacts=run.artefacts)


def _removed(run: RenewalRun, artefacts: list[Artefact]) -> None:
    run.artefacts = [a for a in run.artefacts if a not in artefacts]
    RenewalRun.objects.filter(pk=run.pk).update(artefacts=run.artefacts)


def remove_leftovers(run: RenewalRun) -> None:
    """Removes what the run placed and nobody removed: challenge files and TXT
    records of an attempt whose worker died while the CA validated (the attempt
    that takes the run up finds the order valid and publishes nothing)."""
    # As read when the run was claimed, kept up to date by this worker since
    # (_placed, _removed): nobody else holds the run meanwhile.
    left = list(run.artefacts or [])
    if handed := agent_wait.forget_leftovers(left):
        _removed(run, handed)
    if not left:
        return
    certificate = Certificate.objects.get(pk=run.certificate_id)
    _remove_leftover_files(run, certificate, left)
    records = [a for a in left if a.get("kind") == "dns01"]
    if records:
        credentials = {c.pk: c for c in certificate.dns_credentials.all()}
        publishing.remove(run, records, credentials, removed=lambda done: _removed(run, done))


def _remove_leftover_files(run: RenewalRun, certificate: Certificate,
                           left: list[Artefact]) -> None:
    by_host: dict[int, list[str]] = {}
    for artefact in left:
        if artefact.get("kind") == "http01":
            by_host.setdefault(artefact["host"], []).append(artefact["path"])
    for host in certificate.hosts.filter(pk__in=by_host):
        try:
            with ssh.connect(host) as session:
                for path in by_host[host.pk]:
                    session.remove(path, missing_ok=True)
        except ssh.SSHError as exc:
            run.step(Step.CLEANUP, StepStatus.FAILED, exc, host=host)
            continue
        _removed(run, [{"kind": "http01", "host": host.pk, "path": p} for p in by_host[host.pk]])
        run.step(Step.CLEANUP, StepStatus.DONE, message("challenge.files_removed"), host=host)
