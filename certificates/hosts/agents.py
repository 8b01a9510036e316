"""The host side of agent hosts: enrolment, check-ins, the agent's reports.

An agent host takes part in the one deployment protocol (hosts/deployment.py)
like an SSH host: a run queues a DeployRequest per host and is concluded when
every request is answered. For an SSH host a worker drains the queue over SSH;
for an agent host the agent takes the queued requests at its check-in,
installs them on the server and answers each with its report
(docs/agent-protocol.md). HTTP-01 challenge files go the same way
(AgentChallenge rows, written by the agent before the CA is asked to look).

A credential reads only its own host's work and writes only its own host's
reports: every query here starts from the authenticated host.
"""

from __future__ import annotations

import hmac
import json
import logging
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cache, cached_property
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext as _

from certificates.hosts import deployment, outcomes
from certificates.hosts.items import Report
from certificates.messages import message
from certificates.models import (
    AgentChallenge,
    AgentCredential,
    AgentEnrolment,
    AgentState,
    Certificate,
    Deployment,
    DeployRequest,
    TargetHost,
)
from certificates.models.agents import digest, normalise_code
from certificates.seams import keys, tls
from certificates.seams.errors import FailureKind
from certificates.steps import Step, StepStatus

logger = logging.getLogger(__name__)

# The last check-in is written at most this often when nothing else changed:
# an idle fleet checking in every few seconds must not be a write each time.
SEEN_WRITE_SECONDS = 30
# While a long poll waits, the queue is looked at this often.
POLL_STEP_SECONDS = 0.5
OUTCOMES = {"deployed": Deployment.Status.DEPLOYED, "failed": Deployment.Status.FAILED,
            "rolled_back": Deployment.Status.ROLLED_BACK}
AGENT_STEPS = {Step.BACKUP, Step.UPLOAD, Step.INSTALL, Step.CONFIG_TEST, Step.RELOAD,
               Step.TLS_CHECK, Step.ROLLBACK, Step.CLEANUP}


class AgentRefused(Exception):
    """A request of an agent (or of someone posing as one) refused, with the
    protocol's code and words for a person."""

    def __init__(self, code: str, message: str, *, status: int = 400) -> None:
        super().__init__(message)
        self.code, self.message, self.status = code, message, status


# -- enrolment and credentials ------------------------------------------------------


def make_enrolment_code(host: TargetHost, *, by: Any = None) -> tuple[AgentEnrolment, str]:
    if not host.is_agent:
        raise ValueError(f"{host} is reached over SSH; it has no agent to enrol")
    return AgentEnrolment.issue(host, by=by)


def enrol(*, code: str, hostname: str = "", version: str = "") -> tuple[TargetHost, str]:
    """The host's credential for a good code; the code is used up in the same
    guarded UPDATE that checks it, so that two agents racing with one code
    cannot both enrol."""
    enrolment = (AgentEnrolment.objects.select_related("host")
                 .filter(code_hash=digest(normalise_code(code))).first())
    now = timezone.now()
    if enrolment is None:
        raise AgentRefused("enrolment_code_unknown", _(
            "This enrolment code is not known: check it, or make a new one on the host's "
            "page in the portal."), status=403)
    if enrolment.used_at is not None:
        raise AgentRefused("enrolment_code_used", _(
            "This enrolment code was used already; a code is good once. Make a new one on "
            "the host's page in the portal."), status=403)
    if enrolment.expires_at <= now:
        raise AgentRefused("enrolment_code_expired", _(
            "This enrolment code has expired; make a new one on the host's page in the "
            "portal."), status=403)
    with transaction.atomic():
        if not AgentEnrolment.objects.filter(pk=enrolment.pk, used_at__isnull=True,
                                             expires_at__gt=now).update(used_at=now):
            raise AgentRefused("enrolment_code_used", _(
                "This enrolment code was used already; a code is good once."), status=403)
        _credential, token = AgentCredential.issue(enrolment.host)
        AgentState.objects.update_or_create(host=enrolment.host, defaults={
            "last_seen": now, "version": version[:40], "silence_alerted_at": None})
    logger.info("agent of host %s enrolled (%s)", enrolment.host_id, hostname[:100])
    return enrolment.host, token


@dataclass
class Agent:
    """Who is asking: the credential's host, and what its agent said last.
    Read in one plain query on every request of an agent; the host's row is
    loaded only by the requests that need it (reports, CSRs)."""

    credential_id: int
    host_id: int
    state: dict[str, Any] | None
    had_work: bool = False  # as the authenticating query saw it

    @cached_property
    def host(self) -> TargetHost:
        return TargetHost.objects.select_related("organization").get(pk=self.host_id)


_STATE_FIELDS = ("last_seen", "version", "mode", "interval", "certificates")


# The plain queries of the hot path, made once from the models' table names.
@cache
def _authenticate_sql() -> str:
    """The credential, its host's state, and whether work waits for the host:
    one round trip for an idle check-in."""
    credential, state = AgentCredential._meta.db_table, AgentState._meta.db_table
    return (f"SELECT c.id, c.secret_hash, c.revoked_at, c.host_id, "
            f"({_work_sql('c.host_id')}), s.host_id, "
            f"{', '.join('s.' + name for name in _STATE_FIELDS)} FROM {credential} c "
            f"LEFT JOIN {state} s ON s.host_id = c.host_id WHERE c.prefix = %s")


def authenticate(raw: str) -> Agent:
    """The agent a credential belongs to. Raw SQL rather than the ORM: this runs
    on every check-in of every agent, and compiling the query cost more than
    running it (bench/agents.py)."""
    parts = AgentCredential.split(raw)
    row = None
    if parts is not None:
        with connection.cursor() as cursor:
            cursor.execute(_authenticate_sql(), [True, parts[0]])
            row = cursor.fetchone()
    if row is None or parts is None or not hmac.compare_digest(row[1], digest(parts[1])):
        raise AgentRefused("credential_unknown", _(
            "The portal does not know this agent credential: enrol the agent again."),
            status=401)
    if row[2] is not None:
        raise AgentRefused("credential_revoked", _(
            "The portal revoked this host's agent credential: enrol the agent again with a "
            "new code if it should keep working."), status=401)
    state = None
    if row[5] is not None:
        state = dict(zip(_STATE_FIELDS, row[6:], strict=True))
        if isinstance(state["certificates"], str):  # SQLite hands JSON back as text
            state["certificates"] = json.loads(state["certificates"])
        if isinstance(state["last_seen"], str):
            state["last_seen"] = datetime.fromisoformat(state["last_seen"])
        if state["last_seen"] is not None and timezone.is_naive(state["last_seen"]):
            state["last_seen"] = timezone.make_aware(state["last_seen"], UTC)
    return Agent(credential_id=row[0], host_id=row[3], state=state, had_work=bool(row[4]))


def revoke(host: TargetHost, *, by: Any = None) -> int:
    """Every live credential of the host stops working at once; returns how many."""
    return AgentCredential.objects.filter(host=host, revoked_at__isnull=True).update(
        revoked_at=timezone.now(), revoked_by=by)


# -- check-ins ----------------------------------------------------------------------


@dataclass
class Work:
    install: list[dict[str, Any]] = field(default_factory=list)
    write: list[dict[str, Any]] = field(default_factory=list)
    remove: list[dict[str, Any]] = field(default_factory=list)
    csr: list[dict[str, Any]] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.install or self.write or self.remove or self.csr)

    def as_dict(self) -> dict[str, Any]:
        return {"install": self.install,
                "challenges": {"write": self.write, "remove": self.remove},
                "csr": self.csr}


def check_in(agent: Agent, report: dict[str, Any], *, wait: float = 0) -> Work:
    """Records what the agent said and returns its work; with ``wait``, holds the
    answer until work arrives or the time is up. With nothing to do (the usual
    case) this is one query, and a write only when something changed."""
    _record_state(agent, report)
    deadline = time.monotonic() + max(0.0, min(wait, settings.AGENT_POLL_WAIT))
    # The credential's query has just answered whether work waits: asking again
    # before the first wait would cost every idle check-in a second round trip.
    known = agent.had_work
    while True:
        if known:
            return pending_work(agent.host_id)
        if time.monotonic() >= deadline:
            return Work()
        time.sleep(min(POLL_STEP_SECONDS, max(deadline - time.monotonic(), 0)))
        known = has_work(agent.host_id)


def _record_state(agent: Agent, report: dict[str, Any]) -> None:
    now = timezone.now()
    fields = {"version": str(report.get("agent_version", ""))[:40],
              "mode": report.get("mode") if report.get("mode") in AgentState.Mode.values else "",
              "interval": int(report.get("interval") or 300),
              "certificates": report.get("certificates") or {}}
    state = agent.state
    if state is not None and state["last_seen"] is not None and all(
            state[name] == value for name, value in fields.items()) and (
            now - state["last_seen"] < timedelta(seconds=SEEN_WRITE_SECONDS)):
        return  # nothing new: the last check-in written a moment ago stands
    values = {**fields, "last_seen": now, "silence_alerted_at": None}
    if state is not None and all(state[name] == value for name, value in fields.items()):
        # Only the time: one plain UPDATE by primary key, since a cron agent's
        # every check-in comes here (compiling the ORM's would cost more).
        with connection.cursor() as cursor:
            cursor.execute(_seen_sql(), [now, agent.host_id])
        return
    # Something changed, or its first check-in: the row is made at enrolment,
    # else here.
    if not AgentState.objects.filter(host_id=agent.host_id).update(**values):
        AgentState.objects.update_or_create(host_id=agent.host_id, defaults=values)


@cache
def _seen_sql() -> str:
    return (f"UPDATE {AgentState._meta.db_table} SET last_seen = %s, "
            f"silence_alerted_at = NULL WHERE host_id = %s")


@cache
def _work_sql(host: str) -> str:
    """Whether anything waits for the agent of ``host`` (a column or %s), with one
    boolean parameter (True); the partial indexes on open requests and open
    challenge files answer it."""
    requests, challenges = DeployRequest._meta.db_table, AgentChallenge._meta.db_table
    certificates, bound = Certificate._meta.db_table, Deployment._meta.db_table
    return (f"SELECT EXISTS (SELECT 1 FROM {requests} r WHERE r.host_id = {host} AND "
            f"r.finished_at IS NULL) OR EXISTS (SELECT 1 FROM {challenges} a WHERE a.host_id "
            f"= {host} AND a.removed_at IS NULL AND ((a.written_at IS NULL AND a.error = '') "
            f"OR a.remove_requested_at IS NOT NULL)) OR EXISTS (SELECT 1 FROM {certificates} "
            f"w JOIN {bound} d ON d.certificate_id = w.id WHERE d.host_id = {host} AND "
            f"w.key_on_host = %s AND w.pending_csr = '')")


def has_work(host_id: int) -> bool:
    with connection.cursor() as cursor:
        cursor.execute(_work_sql("%s"), [host_id, host_id, host_id, True])
        return bool(cursor.fetchone()[0])


def pending_work(host_id: int) -> Work:
    work = Work()
    queued = list(DeployRequest.objects.filter(host_id=host_id, finished_at__isnull=True)
                  .select_related("host", "version__certificate")
                  .order_by("requested_at", "pk"))
    if queued:
        newest = deployment.newest_per_certificate(queued)
        work.install = [_install_item(request.host, request) for request in newest.values()]
    for challenge in AgentChallenge.objects.filter(host_id=host_id,
                                                   removed_at__isnull=True).filter(
            Q(written_at__isnull=True, error="") | Q(remove_requested_at__isnull=False)):
        item = {"id": challenge.pk, "certificate": challenge.certificate_name,
                "path": challenge.path}
        if challenge.remove_requested_at is not None:
            work.remove.append(item)
        else:
            work.write.append({**item, "content": challenge.content})
    work.csr = [{"certificate": certificate.common_name, "names": certificate.names()}
                for certificate in Certificate.objects.filter(
                    deployments__host_id=host_id, key_on_host=True, pending_csr="")
                .only("common_name", "sans").order_by("common_name")]
    return work


def _install_item(host: TargetHost, request: DeployRequest) -> dict[str, Any]:
    version = request.version
    certificate = version.certificate
    return {"request": request.pk, "certificate": certificate.common_name,
            "version": version.pk, "serial": version.serial_hex,
            "sni": deployment.sni_name(host, certificate),
            "fingerprint": version.fingerprint_sha256,
            "files": {"private_key": version.private_key or None,
                      "certificate": version.leaf_pem(),
                      "ca_bundle": version.intermediates_pem(),
                      "fullchain": version.fullchain_pem()}}


# -- challenge files ----------------------------------------------------------------


def record_challenges(host: TargetHost, *, written: list[int], removed: list[int],
                      failed: list[dict[str, Any]]) -> None:
    now = timezone.now()
    mine = AgentChallenge.objects.filter(host=host)
    mine.filter(pk__in=written, written_at__isnull=True).update(written_at=now)
    mine.filter(pk__in=removed).update(removed_at=now)
    for failure in failed:
        mine.filter(pk=int(failure.get("id") or 0), written_at__isnull=True).update(
            error=str(failure.get("error") or _("failed"))[:2000])


# -- keys made on the server ----------------------------------------------------------


def store_csr(host: TargetHost, name: str, csr_pem: str) -> None:
    """The CSR of the next key of a certificate whose key is made on this host:
    kept for its next issuance once it is signed by its key and names exactly
    the certificate's names."""
    certificate = Certificate.objects.filter(
        deployments__host=host, key_on_host=True, common_name=name).first()
    if certificate is None:
        raise AgentRefused("invalid", _(
            "%(name)s is not a certificate of this host whose key is made on the server.")
            % {"name": name})
    try:
        keys.check_csr(csr_pem, certificate.names())
    except ValueError as exc:
        raise AgentRefused("invalid", _("The certificate request for %(name)s: %(error)s")
                           % {"name": name, "error": exc}) from exc
    Certificate.objects.filter(pk=certificate.pk).update(pending_csr=csr_pem.strip() + "\n")


# -- reports ------------------------------------------------------------------------


def record_report(host: TargetHost, report: dict[str, Any]) -> None:
    """The outcome of one installation, with its steps, on the request, the
    Deployment row and the run; older requests of the same certificate on this
    host are answered with it (or as superseded); the runs whose requests are
    all answered are concluded."""
    request = (DeployRequest.objects.select_related("version__certificate", "deployment", "run")
               .filter(pk=report["request"], host=host, finished_at__isnull=True).first())
    if request is None:
        raise AgentRefused("conflict", _(
            "This deployment request is not waiting on this host (answered already, or "
            "another host's)."), status=409)
    record = deployment.reporter(request.run, host)
    for step in report.get("steps") or []:
        if step.get("name") in AGENT_STEPS and step.get("status") in StepStatus.values:
            record(step["name"], step["status"], str(step.get("detail", ""))[:4000])
    outcome = _outcome(host, request, report, record)
    deployment.answer(request, host, outcome)
    others = list(DeployRequest.objects.filter(
        host=host, deployment=request.deployment, finished_at__isnull=True,
        version_id__lte=request.version_id).select_related("version"))
    for older in others:
        deployment.answer_older(older, host, request, outcome)
    deployment.enqueue_conclusions(
        {run_id for run_id in [request.run_id, *(o.run_id for o in others)] if run_id})


def _outcome(host: TargetHost, request: DeployRequest, report: dict[str, Any],
             record: Report) -> outcomes.Outcome:
    status = OUTCOMES[report["outcome"]]
    version = request.version
    served = str(report.get("served_fingerprint") or "")
    if status != Deployment.Status.DEPLOYED:
        kind = (FailureKind.AGENT_NOT_CONFIGURED if report.get("error_kind") == "not_configured"
                else FailureKind.AGENT_REPORT)
        return outcomes.new_outcome(host, version, status,
                                    error=str(report.get("error") or "")[:4000]
                                    or message("agent.failed"),
                                    kind=kind, transient=bool(report.get("transient")),
                                    served=served)
    proof = _portal_check(host, request, record)
    if proof is not None and proof != version.fingerprint_sha256:
        return outcomes.new_outcome(
            host, version, Deployment.Status.FAILED,
            error=message("agent.portal_sees_other", address=host.tls_check_address,
                          port=host.tls_check_port, served=proof),
            kind=FailureKind.NOT_SERVED, transient=True, served=proof)
    Deployment.objects.filter(pk=request.deployment_id).update(
        served_checked_by="portal" if proof else "agent")
    return outcomes.new_outcome(host, version, status, served=proof or served)


def _portal_check(host: TargetHost, request: DeployRequest,
                  record: Report) -> str | None:
    """The portal's own look at the served leaf, where it can reach the server
    (a TLS check address is set): the served fingerprint, or None when only the
    agent's report can prove it."""
    if not host.tls_check_address:
        record(Step.TLS_CHECK, StepStatus.SKIPPED, message("agent.no_check_address"))
        return None
    sni = deployment.sni_name(host, request.version.certificate)
    try:
        served = tls.served_leaf_sha256(host.tls_check_address, host.tls_check_port, sni,
                                        timeout=settings.TLS_CHECK_TIMEOUT)
    except tls.TLSCheckError as exc:
        record(Step.TLS_CHECK, StepStatus.SKIPPED,
               message("agent.portal_unreachable", error=exc))
        return None
    if served == request.version.fingerprint_sha256:
        record(Step.TLS_CHECK, StepStatus.DONE, message(
            "agent.portal_sees_new", address=host.tls_check_address, port=host.tls_check_port))
    else:
        record(Step.TLS_CHECK, StepStatus.FAILED, message(
            "agent.portal_sees_other_step", address=host.tls_check_address,
            port=host.tls_check_port))
    return served


# -- recovery -----------------------------------------------------------------------


def answer_unclaimed(*, now: datetime | None = None) -> int:
    """Requests of agent hosts whose agent did not report within its wait budget
    are answered as failed (transient: the next retry queues them again), so
    that their runs end and their failure is told rather than waiting forever."""
    now = now or timezone.now()
    waiting = (DeployRequest.objects.filter(host__transport=TargetHost.Transport.AGENT,
                                            finished_at__isnull=True)
               .select_related("host__agent_state", "version", "deployment", "run"))
    answered: set[int] = set()
    for request in waiting:
        state = getattr(request.host, "agent_state", None)
        budget = state.wait_budget(now) if state else settings.AGENT_WAIT_MAX_SECONDS
        allowance = max(budget, settings.AGENT_WAIT_MAX_SECONDS)
        if request.requested_at + timedelta(seconds=allowance) > now:
            continue
        seen = state.last_seen if state and state.last_seen else None
        deployment.answer(request, request.host, outcomes.new_outcome(
            request.host, request.version, Deployment.Status.FAILED, kind=FailureKind.AGENT_SILENT,
            transient=True, error=message("agent.not_taken_up", host=request.host.name,
                                         minutes=allowance // 60,
                                         seen=seen or message("never"))))
        if request.run_id:
            answered.add(request.run_id)
    deployment.enqueue_conclusions(answered)
    return len(answered)


def silent_agents(*, now: datetime | None = None) -> list[AgentState]:
    """Agents overdue by AGENT_SILENT_INTERVALS intervals and not yet told about
    (their live credential not revoked)."""
    now = now or timezone.now()
    candidates = AgentState.objects.filter(
        last_seen__isnull=False, silence_alerted_at__isnull=True,
        host__agent_credentials__revoked_at__isnull=True,
        host__transport=TargetHost.Transport.AGENT,
    ).select_related("host__organization").distinct()
    return [state for state in candidates if state.silent_since(now) is not None]


def mark_silence_told(state: AgentState, *, now: datetime | None = None) -> bool:
    """True for the one caller that marks this silence (its alert goes once)."""
    return bool(AgentState.objects.filter(
        pk=state.pk, silence_alerted_at__isnull=True, last_seen=state.last_seen,
    ).update(silence_alerted_at=now or timezone.now()))

