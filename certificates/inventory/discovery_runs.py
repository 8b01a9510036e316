"""Discovery in the background: `start` checks what a person asked for and
records it as a `Discovery`, which a worker runs (`run`, the task
certificates.discover); its progress, findings and errors are kept on the row
as they come, for the page and the API to follow.

The request is refused before any row exists (ValidationError naming the
field), so nothing half-made stays behind; what goes wrong later (a host that
cannot be reached) ends the discovery as failed, with the reason kept as data.
"""

import datetime
import functools
import logging
from collections.abc import Sequence

from celery.exceptions import SoftTimeLimitExceeded
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import F
from django.utils import timezone
from django.utils.translation import gettext

from accounts.models import Organization, User
from certificates.messages import message, render
from certificates.messages.catalogue import CATALOGUE
from certificates.models import Discovery, InventoryCertificate, TargetHost
from certificates.renewal.lifecycle import queue_lease
from certificates.seams.errors import FailureKind, PortalError

from . import discovery

logger = logging.getLogger(__name__)
Status = Discovery.Status


def _enqueue(discovery_id: int) -> None:
    from certificates.tasks import discover  # noqa: PLC0415 - the tasks import the services

    discover.delay(discovery_id)


def start(organization: Organization, *, by: User | None, targets_text: str = "",
          ports_text: str = "", names: Sequence[str] = (), host: TargetHost | None = None,
          paths: Sequence[str] = ()) -> Discovery:
    """A scan (targets and ports) or a reading of `paths` on `host`, queued for
    a worker once the caller's transaction commits."""
    if host is not None:
        discovery.check_host(host)
        row = Discovery(organization=organization, kind=Discovery.Kind.FILES, host=host,
                        paths=discovery.check_paths(paths), total=0, requested_by=by)
    else:
        addresses, ports = discovery.check_scan(targets_text, ports_text)
        row = Discovery(organization=organization, kind=Discovery.Kind.SCAN,
                        targets=targets_text.strip(), ports=ports_text.strip(),
                        names=list(names), total=len(addresses) * len(ports), requested_by=by)
    row.lease_until = timezone.now() + queue_lease()
    row.save()
    transaction.on_commit(functools.partial(_enqueue, row.pk))
    return row


def _run_lease() -> datetime.timedelta:
    """A worker stops a discovery at the task's hard time limit: one running
    past it (and a minute's grace) lost its worker."""
    from certificates.tasks import DISCOVERY_LIMITS  # noqa: PLC0415 - see _enqueue

    return datetime.timedelta(seconds=DISCOVERY_LIMITS["time_limit"] + 60)


def requeue_lost(*, now: datetime.datetime | None = None) -> list[int]:
    """Open discoveries whose message or worker was lost (their lease ran out)
    are queued and sent again, once per lease however often this runs; their
    ids are returned. A message that was only slow finds its discovery taken
    (``_claim``) and does nothing."""
    now = now or timezone.now()
    sent: list[int] = []
    lost = Discovery.objects.filter(status__in=(Status.QUEUED, Status.RUNNING),
                                    lease_until__lt=now)
    for discovery_id, lease_until in lost.values_list("pk", "lease_until"):
        if Discovery.objects.filter(
                pk=discovery_id, status__in=(Status.QUEUED, Status.RUNNING),
                lease_until=lease_until,
        ).update(status=Status.QUEUED, lease_until=now + queue_lease()):
            logger.warning("discovery %s lost its worker or message; sent again", discovery_id)
            _enqueue(discovery_id)
            sent.append(discovery_id)
    return sent


class _Tracker:
    """discovery.Progress, written to the row: counters with F() (one UPDATE
    each batch), the first-found certificates added to its findings."""

    def __init__(self, row: Discovery) -> None:
        self.row = row

    def planned(self, count: int) -> None:
        if self.row.kind == Discovery.Kind.SCAN and self.row.checked == 0 and count:
            # The first round was counted when the scan was asked for.
            self.row.total = count
            Discovery.objects.filter(pk=self.row.pk).update(total=count)
            return
        Discovery.objects.filter(pk=self.row.pk).update(total=F("total") + count)

    def checked(self, count: int, found: discovery.Found,
                new: list[InventoryCertificate]) -> None:
        self.row.checked += count
        Discovery.objects.filter(pk=self.row.pk).update(
            checked=F("checked") + count, served=found.served, managed=found.managed)
        if new:
            self.row.findings.add(*new)


def _claim(discovery_id: int) -> Discovery | None:
    """The row, now running; None when it ended, or another worker runs it (a
    task delivered twice, or sent again while the first message was only slow).
    A running one whose lease ran out is started again: its worker was lost."""
    now = timezone.now()
    with transaction.atomic():
        row = (Discovery.objects.select_for_update(of=("self",))
               .select_related("organization", "host", "requested_by")
               .filter(pk=discovery_id).first())
        if row is None or not row.is_open:
            return None
        if row.status == Status.RUNNING and row.lease_until and row.lease_until > now:
            return None
        row.status, row.checked, row.served, row.managed = Status.RUNNING, 0, 0, 0
        row.lease_until = now + _run_lease()
        row.save(update_fields=["status", "checked", "served", "managed", "lease_until"])
    return row


REFUSED = "refused"  # an error kind of discoveries only: the request is no longer allowed


def _error(exc: BaseException) -> dict:
    """A failure as data: its kind (a FailureKind, or REFUSED; its label is
    read in the reader's language), the message's key and parameters where it
    has them (read in the reader's language too), and its words in
    STORED_LANGUAGE (or as the service said them, where it has no key)."""
    if isinstance(exc, ValidationError):
        errors = (sum(exc.error_dict.values(), []) if hasattr(exc, "error_dict")
                  else exc.error_list)
        keyed = next((error for error in errors if error.code in CATALOGUE), None)
        if keyed is not None and keyed.code:
            return _keyed(REFUSED, keyed.code, keyed.params or {})
        return {"kind": REFUSED, "detail": " ".join(exc.messages)[:500]}
    if isinstance(exc, SoftTimeLimitExceeded):
        return {"kind": FailureKind.TIME_LIMIT.value, "detail": ""}
    if isinstance(exc, PortalError):
        if exc.key:
            return _keyed(str(exc.kind), exc.key, exc.params)
        return {"kind": str(exc.kind), "detail": str(exc)[:500]}
    return {"kind": FailureKind.UNEXPECTED.value, "detail": ""}


def _keyed(kind: str, key: str, params: dict) -> dict:
    said = message(key, **params)
    return {"kind": kind, "key": said.key, "params": said.params,
            "detail": said.stored_text()[:500]}


def describe_error(error: dict) -> str:
    """A stored error in the current language."""
    kind = error.get("kind", "")
    label = (gettext("Refused") if kind == REFUSED
             else FailureKind(kind).label if kind in FailureKind.values
             else FailureKind.UNEXPECTED.label)
    detail = render(error.get("key", ""), error.get("params"), fallback=error.get("detail", ""))
    return f"{label}: {detail}" if detail else str(label)


def run(discovery_id: int) -> None:
    row = _claim(discovery_id)
    if row is None:
        return
    tracker = _Tracker(row)
    try:
        if row.kind == Discovery.Kind.FILES:
            found = _read_files(row)
        else:
            found = discovery.scan(row.organization, targets_text=row.targets,
                                   ports_text=row.ports, names=row.names,
                                   by=row.requested_by, progress=tracker)
    except Exception as exc:
        Discovery.objects.filter(pk=row.pk).update(
            status=Status.FAILED, errors=[*row.errors, _error(exc)], lease_until=None,
            finished_at=timezone.now())
        if not isinstance(exc, PortalError | ValidationError | SoftTimeLimitExceeded):
            raise  # a bug: the worker's log has it, the row says it failed
        logger.info("discovery %s failed: %r", row.pk, exc)
        return
    Discovery.objects.filter(pk=row.pk).update(
        status=Status.DONE, served=found.served, managed=found.managed, lease_until=None,
        errors=[_error(error) for error in found.errors[:20]],
        finished_at=timezone.now())


def _read_files(row: Discovery) -> discovery.Found:
    if row.host is None:  # the host was deleted while the discovery waited
        raise PortalError(FailureKind.UNREACHABLE.label, kind=FailureKind.UNREACHABLE)
    found = discovery.read_host_files(row.host, row.paths, by=row.requested_by)
    Discovery.objects.filter(pk=row.pk).update(checked=found.probes, total=found.probes)
    row.findings.add(*found.rows)
    return found
