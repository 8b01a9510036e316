"""What happened: renewal runs with their steps, and every message sent."""

import logging
import threading
from contextlib import contextmanager
from datetime import timedelta

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.dispatch import Signal
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from certificates.messages import Message, stored
from certificates.seams.errors import FailureKind
from fujissl_portal import uptime
from fujissl_portal.encryption import EncryptedTextField

from ..steps import Step, StepStatus

logger = logging.getLogger(__name__)

# Sent with `step` each time a renewal step is recorded.
step_recorded = Signal()


class RenewalRun(models.Model):
    """One attempt to renew a certificate, start to finish."""

    class Trigger(models.TextChoices):
        SCHEDULE = "schedule", _("Schedule")
        MANUAL = "manual", _("Manual")
        API = "api", _("API")
        INCIDENT = "incident", _("Incident")

    class Intent(models.TextChoices):
        # What the run is for, kept on the run so that a retry does the same.
        ISSUE = "issue", _("Issue and deploy")
        DEPLOY = "deploy", _("Deploy only")

    class Status(models.TextChoices):
        # The life of a run is in certificates/renewal/lifecycle.py (one function per
        # transition); docs/architecture.md draws it.
        QUEUED = "queued", _("Queued")
        RUNNING = "running", _("Running")
        DEPLOYING = "deploying", _("Deploying")
        SUCCEEDED = "succeeded", _("Succeeded")
        FAILED = "failed", _("Failed")
        INSUFFICIENT_DEPOSIT = "insufficient_deposit", _("Insufficient deposit")

    # Open: someone will still act on the run. Final: it is over, with this outcome.
    OPEN = (Status.QUEUED, Status.RUNNING, Status.DEPLOYING)
    FINAL = (Status.SUCCEEDED, Status.FAILED, Status.INSUFFICIENT_DEPOSIT)
    # Final and not succeeded: what the dashboard counts as needing a person.
    UNSUCCESSFUL = (Status.FAILED, Status.INSUFFICIENT_DEPOSIT)

    certificate = models.ForeignKey(
        "certificates.Certificate", on_delete=models.CASCADE, related_name="runs"
    )
    trigger = models.CharField(_("trigger"), max_length=10, choices=Trigger.choices)
    intent = models.CharField(_("intent"), max_length=10, choices=Intent.choices,
                              default=Intent.ISSUE)
    # The hosts a deploy-only run was asked for (ids); None: all the certificate's.
    hosts = models.JSONField(_("hosts"), null=True, blank=True)
    status = models.CharField(
        _("status"), max_length=24, choices=Status.choices, default=Status.QUEUED
    )
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True,
        related_name="+", verbose_name=_("requested by"),
    )
    log = models.TextField(_("log"), blank=True)
    # What went wrong, as text (in English where it has a key) and as a message
    # of the catalogue, rendered in the reader's language (certificates.messages);
    # runs from before keys have the text only.
    error = models.TextField(_("error"), blank=True)
    error_key = models.CharField(_("error's message key"), max_length=80, blank=True)
    error_params = models.JSONField(_("error's parameters"), default=dict, blank=True)
    # What went wrong, as a kind code reacts to (errors.FailureKind).
    failure_kind = models.CharField(_("kind of failure"), max_length=40, blank=True,
                                    choices=FailureKind.choices)
    # What went wrong, for mails that must go once per cause rather than once per
    # certificate (a host key refused on one host, then nginx broken on another).
    failure_cause = models.CharField(_("cause of failure"), max_length=200, blank=True)
    # Transient errors are retried with backoff; permanent ones wait for a person.
    error_class = models.CharField(
        _("kind of error"), max_length=10, blank=True,
        choices=[("transient", _("Transient")), ("permanent", _("Permanent"))],
    )
    # The CA's RFC 7807 problem document, kept whole (type, detail, subproblems).
    problem = models.JSONField(_("CA problem"), null=True, blank=True)
    # When the CA asked us to come back (rateLimited, 503 with Retry-After).
    retry_after = models.DateTimeField(_("retry after"), null=True, blank=True)
    # The order in flight and its key, kept so that a run picked up again after a
    # worker died resumes the same ACME order instead of issuing twice.
    acme_order_url = models.URLField(_("ACME order URL"), max_length=500, blank=True)
    private_key = EncryptedTextField(_("private key of the order"), blank=True)
    version = models.ForeignKey(
        "certificates.CertificateVersion", on_delete=models.SET_NULL, null=True, blank=True,
        related_name="+", verbose_name=_("issued version"),
    )
    # What the run placed outside the portal that must not outlive it (HTTP-01
    # challenge files, DNS-01 TXT records), written before placing each: whoever
    # ends the run removes what is left, even after the worker that placed it died.
    artefacts = models.JSONField(_("placed artefacts"), default=list, blank=True)
    created_at = models.DateTimeField(_("queued"), default=timezone.now)
    started_at = models.DateTimeField(_("started"), null=True, blank=True)
    finished_at = models.DateTimeField(_("finished"), null=True, blank=True)
    # A worker holds a running run until this time; a run still "running" after
    # its lease ran out lost its worker (killed, machine gone) and is taken up again.
    lease_until = models.DateTimeField(_("lease until"), null=True, blank=True)
    # How long each renewal of the lease lasts: RENEWAL_LEASE_SECONDS, or less when
    # the certificate has little validity left (renewal/policy.py); None: the setting.
    lease_seconds = models.PositiveIntegerField(_("lease length"), null=True, blank=True)
    # The worker process holding a running run ("host:pid", as host leases name
    # theirs): a worker starting on that host takes over the runs of its dead ones.
    held_by = models.CharField(_("held by"), max_length=80, blank=True)
    attempts = models.PositiveSmallIntegerField(_("attempts"), default=0)
    # The incident that opened the run (certificates/incidents/), if any.
    incident = models.ForeignKey("certificates.Incident", on_delete=models.SET_NULL, null=True,
                                 blank=True, related_name="runs", verbose_name=_("incident"))

    tenant_path = "certificate__organization"

    # Never stored: what a service tells its caller about the run it returns.
    # Renewing outside the renewal window (the caller audits it):
    forced: bool = False
    # A "deploy now" found this run under way and opened none:
    already_open: bool = False
    # This call's guarded move ended the run, so it is the one to send the alerts:
    ended_here: bool = False

    class Meta:
        ordering = ["-created_at", "-pk"]
        verbose_name = _("renewal run")
        verbose_name_plural = _("renewal runs")
        indexes = [
            # A certificate's history, newest first (detail page, API).
            models.Index(fields=["certificate", "-created_at"], name="run_by_cert_idx"),
            # Recovery after a worker dies: the runs still open.
            models.Index(
                fields=["status"], condition=Q(status__in=["queued", "running", "deploying"]),
                name="run_open_idx",
            ),
            # The dashboard's recent runs.
            models.Index(fields=["-created_at"], name="run_recent_idx"),
        ]
        constraints = [
            # One renewal at a time per certificate, enforced by the database: two
            # scans racing each other cannot both open a run.
            models.UniqueConstraint(
                fields=["certificate"],
                condition=Q(status__in=["queued", "running", "deploying"]),
                name="one_open_run_per_certificate",
            ),
        ]

    def __str__(self):
        return f"{self.certificate} {self.get_trigger_display()} {self.created_at:%Y-%m-%d %H:%M}"

    @property
    def is_open(self) -> bool:
        return self.status in self.OPEN

    @property
    def is_stalled(self) -> bool:
        """Open, but its lease ran out: its worker is gone (or its message lost)
        and the recovery pass has not taken it up again yet."""
        return (self.status in self.OPEN and self.lease_until is not None
                and self.lease_until < timezone.now())

    @property
    def error_message(self) -> Message:
        return Message(self.error_key, self.error_params or {}, self.error)

    def get_progress_display(self) -> str:
        """The status as a person reads it: a stalled run says it waits."""
        if self.is_stalled:
            return str(_("Waiting to be taken up again"))
        return self.get_status_display()

    def step(self, name, status, detail="", *, host=None):
        """Record one step as it happens (the UI shows them live; `manage.py renew`
        prints them through the `step_recorded` signal). A step is also a sign of
        life: it extends a running run's lease. Inside `held_steps()` the step is
        written with the others held there, a moment later."""
        said = stored(detail)
        step = RenewalStep(run=self, name=name, status=status, detail=said["text"][:4000],
                           detail_key=said["key"], detail_params=said["params"], host=host)
        held = getattr(_held, "steps", None)
        if held is not None:
            held.append((self, step))
            return step
        step.save()
        self._recorded(step)
        return step

    def lease_length(self) -> timedelta:
        return timedelta(seconds=self.lease_seconds or settings.RENEWAL_LEASE_SECONDS)

    def _recorded(self, step):
        # A lease lasts lease_length(); extending it at most every tenth of that
        # saves a write for most steps, which come a fraction of a second apart.
        lease = self.lease_length()
        extended = getattr(self, "_lease_extended_at", None)
        if extended is None or step.at - extended >= lease / 10:
            RenewalRun.objects.filter(
                pk=self.pk, status__in=(self.Status.RUNNING, self.Status.DEPLOYING),
            ).update(lease_until=step.at + lease)
            self._lease_extended_at = step.at
        step_recorded.send(sender=RenewalStep, step=step)
        return step


_held = threading.local()  # this thread's steps not written yet, inside held_steps()


@contextmanager
def held_steps():
    """Within it, this thread's steps are written together, by ``flush(max_age)``
    (those held longer than ``max_age`` seconds, and the rest with them) and on
    leaving. A batch deployment reports each of its phases for every certificate
    at once: one INSERT then instead of one per certificate. Each step keeps the
    time it was recorded; nested, the outermost writes."""
    if getattr(_held, "steps", None) is not None:
        yield lambda max_age=0: None
        return
    _held.steps = []
    try:
        yield _flush
    except BaseException:
        try:
            _flush()
        except Exception:  # the error that got us here is the one to report
            logger.exception("steps held for a batch could not be written")
        raise
    else:
        _flush()
    finally:
        _held.steps = None


def _flush(max_age: float = 0) -> None:
    held = _held.steps
    if not held or (timezone.now() - held[0][1].at).total_seconds() < max_age:
        return
    pending = held[:]
    held.clear()
    RenewalStep.objects.bulk_create([step for _run, step in pending])
    for run, step in pending:
        run._recorded(step)


class RenewalStep(models.Model):
    """One step of a renewal run: order, challenge, validation, finalization, a
    host's deployment or TLS check. Rows, not a list in one field, so that
    concurrent deployments to several hosts never overwrite each other's steps."""

    Name = Step
    Status = StepStatus

    run = models.ForeignKey(RenewalRun, on_delete=models.CASCADE, related_name="steps")
    name = models.CharField(_("step"), max_length=40, choices=Step.choices)
    status = models.CharField(_("status"), max_length=10, choices=Status.choices)
    host = models.ForeignKey(
        "certificates.TargetHost", on_delete=models.SET_NULL, null=True, blank=True,
        related_name="+", verbose_name=_("host"),
    )
    # The detail as text (in English where it has a key) and as a message of the
    # catalogue, rendered in the reader's language; older steps have the text only.
    detail = models.TextField(_("detail"), blank=True)
    detail_key = models.CharField(_("detail's message key"), max_length=80, blank=True)
    detail_params = models.JSONField(_("detail's parameters"), default=dict, blank=True)
    at = models.DateTimeField(_("at"), default=timezone.now)

    tenant_path = "run__certificate__organization"

    class Meta:
        ordering = ["at", "pk"]
        verbose_name = _("renewal step")
        verbose_name_plural = _("renewal steps")

    def __str__(self):
        return f"{self.get_name_display()}: {self.get_status_display()}"

    @property
    def detail_message(self) -> Message:
        return Message(self.detail_key, self.detail_params or {}, self.detail)


class Notification(models.Model):
    """One e-mail to one person, with whether it went out."""

    class Kind(models.TextChoices):
        RENEWAL_FAILED = "renewal_failed", _("Renewal failed")
        DEPOSIT_LOW = "deposit_low", _("Deposit low")
        DEPOSIT_INSUFFICIENT = "deposit_insufficient", _("Deposit insufficient")
        NOT_SERVED = "not_served", _("Deployment not served")
        EXPIRING = "expiring", _("Certificate expiring")
        AGENT_SILENT = "agent_silent", _("Agent silent")
        EXPIRED = "expired", _("Expired certificate served")
        RUN_STUCK = "run_stuck", _("Renewal run stuck")
        ENDPOINT_EXPIRING = "endpoint_expiring", _("Monitored certificate expiring")
        ENDPOINT_PROBLEM = "endpoint_problem", _("Monitored endpoint does not verify")
        ENDPOINT_CHANGED = "endpoint_changed", _("Monitored certificate changed")
        UNMANAGED_EXPIRING = "unmanaged_expiring", _("Unmanaged certificate expiring")

    organization = models.ForeignKey(
        "accounts.Organization", on_delete=models.CASCADE, related_name="notifications"
    )
    certificate = models.ForeignKey(
        "certificates.Certificate", on_delete=models.CASCADE, null=True, blank=True,
        related_name="notifications",
    )
    ca_account = models.ForeignKey(
        "certificates.CAAccount", on_delete=models.CASCADE, null=True, blank=True,
        related_name="notifications",
    )
    # An alert about a host rather than a certificate (an agent gone silent).
    host = models.ForeignKey("certificates.TargetHost", on_delete=models.CASCADE, null=True,
                             blank=True, related_name="+")
    # An alert about a monitored endpoint (a certificate managed elsewhere).
    endpoint = models.ForeignKey("certificates.MonitoredEndpoint", on_delete=models.CASCADE,
                                 null=True, blank=True, related_name="+")
    # An alert about a certificate managed elsewhere that no endpoint serves.
    inventory_certificate = models.ForeignKey(
        "certificates.InventoryCertificate", on_delete=models.CASCADE, null=True, blank=True,
        related_name="+")
    kind = models.CharField(_("kind"), max_length=24, choices=Kind.choices)
    # What exactly happened ("first failure", "14 days left"...), for de-duplication.
    event = models.CharField(_("event"), max_length=120, blank=True)
    recipient = models.EmailField(_("recipient"))
    language = models.CharField(_("language"), max_length=8, default="ja")
    subject = models.CharField(_("subject"), max_length=300)
    sent_at = models.DateTimeField(_("sent"), null=True, blank=True)
    error = models.TextField(_("error"), blank=True)
    # What the mail was made of (the run's id and the alert's figures, as
    # alerts.py encodes them), so that a mail the server refused is made again in
    # the recipient's language and sent later.
    params = models.JSONField(_("parameters"), default=dict, blank=True)
    attempts = models.PositiveSmallIntegerField(_("attempts"), default=0)
    # When to try a refused mail again; None once sent, or given up.
    next_attempt_at = models.DateTimeField(_("next attempt"), null=True, blank=True)
    created_at = models.DateTimeField(_("created"), default=timezone.now)

    tenant_path = "organization"

    class Meta:
        ordering = ["-created_at", "-pk"]
        verbose_name = _("notification")
        verbose_name_plural = _("notifications")
        indexes = [
            # "At most one mail per kind and certificate a day" looks up this triple.
            models.Index(fields=["kind", "certificate", "created_at"], name="notif_dedupe_idx"),
            # The retry pass: mails still waiting for another attempt.
            models.Index(fields=["next_attempt_at"], condition=Q(next_attempt_at__isnull=False),
                         name="notif_retry_idx"),
        ]

    def __str__(self):
        return f"{self.get_kind_display()} → {self.recipient}"


class Heartbeat(models.Model):
    """When a worker last ran the scheduler's heartbeat task.

    If beat or every worker stops, renewals stop silently; the dashboard warns
    when this row grows old (see STALE_AFTER).
    """

    STALE_AFTER = timedelta(minutes=5)

    name = models.CharField(_("name"), max_length=50, unique=True)
    beat_at = models.DateTimeField(_("last beat"))

    class Meta:
        verbose_name = _("heartbeat")
        verbose_name_plural = _("heartbeats")

    def __str__(self):
        return f"{self.name} {self.beat_at:%Y-%m-%d %H:%M:%S}"

    @classmethod
    def record(cls, name="scheduler"):
        cls.objects.update_or_create(name=name, defaults={"beat_at": timezone.now()})

    @classmethod
    def is_stale(cls, name="scheduler", now=None) -> bool:
        now = now or timezone.now()
        awaited = f"{name}:awaited"
        beats = dict(cls.objects.filter(name__in=(name, awaited))
                     .values_list("name", "beat_at"))
        # No worker has ever beaten: right after a start that is normal, as the
        # worker has not had its first turn yet. The time the portal first
        # looked is kept as a row of its own and counts as the beat, so the
        # warning comes once STALE_AFTER has passed without one. First looked
        # rather than started, since every way of running the portal (make run,
        # production's own processes, tests) looks; and the row outlives
        # restarts, so a scheduler that never ran is still reported.
        if name not in beats and awaited not in beats:
            # One INSERT that a concurrent first look may have beaten; the two
            # times are then a moment apart, so ours stands for both.
            cls.objects.bulk_create([cls(name=awaited, beat_at=now)], ignore_conflicts=True)
        beat_at = beats.get(name) or beats.get(awaited) or now
        # Just started (make run, a restart): the last beat is from before the
        # restart, and the worker starting alongside has not reported yet.
        return beat_at < now - cls.STALE_AFTER and not uptime.in_startup_grace(now)
