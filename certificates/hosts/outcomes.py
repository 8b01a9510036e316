"""What a deployment to one host came to (an Outcome), and where it is written:
the Deployment row (the last status, whether the host serves the version) and
the run's log."""

from __future__ import annotations

from dataclasses import dataclass, field

from django.db.models import F, TextField, Value
from django.db.models.functions import Concat
from django.utils import timezone

from certificates.messages import Message, as_message, stored_fields, text
from certificates.models import (
    CertificateVersion,
    Deployment,
    DeployRequest,
    RenewalRun,
    TargetHost,
)


@dataclass(frozen=True)
class Outcome:
    host_id: int
    host_name: str
    status: str  # a Deployment.Status value
    # What went wrong, in the current language (for logs), and as the message of
    # the catalogue that is stored (certificates.messages).
    error: str = ""
    # What went wrong, for code that reacts to it (an errors.FailureKind value).
    error_kind: str = ""
    transient: bool = False
    expected_fingerprint: str = ""
    served_fingerprint: str = ""
    message: Message = field(default_factory=lambda: text(""))

    @property
    def ok(self) -> bool:
        return self.status == Deployment.Status.DEPLOYED


# The fields of a request (with its host and version) that outcome_of reads.
OUTCOME_FIELDS = ("host_id", "host__name", "version_id", "version__fingerprint_sha256",
                  "run_id", "finished_at", "status", "error", "error_key", "error_params",
                  "error_kind", "transient",
                  "served_fingerprint")


def outcome_of(request: DeployRequest) -> Outcome:
    """The Outcome written on an answered request."""
    return Outcome(host_id=request.host_id, host_name=request.host.name, status=request.status,
                   error=str(request.error_message), message=request.error_message,
                   error_kind=request.error_kind,
                   transient=request.transient,
                   expected_fingerprint=request.version.fingerprint_sha256,
                   served_fingerprint=request.served_fingerprint)


def new_outcome(host: TargetHost, version: CertificateVersion, status: str, *,
                error: object = "", kind: str = "", transient: bool = False,
                served: str = "") -> Outcome:
    """``error``: a Message, an error that carries one, or text."""
    said = as_message(error)
    return Outcome(host_id=host.pk, host_name=host.name, status=status, error=str(said),
                   message=said,
                   error_kind=kind, transient=transient,
                   expected_fingerprint=version.fingerprint_sha256, served_fingerprint=served)


def record(deployment: Deployment, version: CertificateVersion, run: RenewalRun | None,
            outcome: Outcome) -> Outcome:
    _record_deployment(deployment, version, outcome)
    _log_on_run(run, outcome)
    return outcome


def _record_deployment(deployment: Deployment, version: CertificateVersion,
                       outcome: Outcome) -> None:
    now = timezone.now()
    fields: dict[str, object] = {"last_status": outcome.status,
                                 **stored_fields("last_error", outcome.message)}
    if outcome.ok:
        fields.update(last_version=version, last_deployed_at=now)
    if outcome.served_fingerprint:  # a TLS check completed a handshake
        fields.update(served=outcome.served_fingerprint == outcome.expected_fingerprint,
                      served_fingerprint=outcome.served_fingerprint, last_checked_at=now)
    # update(), not save(): only these fields, so a concurrent edit of the row stays.
    Deployment.objects.filter(pk=deployment.pk).update(**fields)


def _log_on_run(run: RenewalRun | None, outcome: Outcome) -> None:
    if run is None:
        return
    # The log is text: the error in English (its message is on the Deployment row
    # and the run's error, which are read in the reader's language).
    line = f"{outcome.host_name}: {outcome.status}"
    error = stored_fields("error", outcome.message)["error"]
    if error:
        line += f": {error.splitlines()[0]}"
    # Concatenated in SQL: hosts deployed in parallel append without losing lines.
    RenewalRun.objects.filter(pk=run.pk).update(
        log=Concat(F("log"), Value(line + "\n"), output_field=TextField()))
