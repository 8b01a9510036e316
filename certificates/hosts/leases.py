"""One deployment at a time per host: a lease on the TargetHost row, taken with a
guarded UPDATE (so two workers can never both hold it) and renewed before each
step; a dead worker's lease simply runs out."""

from __future__ import annotations

import logging
import os
import socket
import uuid
from datetime import timedelta

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from certificates.models import TargetHost

logger = logging.getLogger(__name__)


def host_lease_seconds() -> float:
    # Renewed before every step, so it only has to outlast the longest single
    # step: a rollback's chown of four files and its reload, or the TLS grace.
    # fujissl_portal/checks.py keeps it within the deployment task's time limit.
    return (settings.SSH_CONNECT_TIMEOUT + 6 * settings.SSH_COMMAND_TIMEOUT
            + settings.DEPLOY_TLS_GRACE_SECONDS)


def lease_length() -> timedelta:
    return timedelta(seconds=host_lease_seconds())


def process_owner() -> str:
    """This worker process, as a holder ("host:pid"): what a run's claim records."""
    return f"{socket.gethostname()[:30]}:{os.getpid()}"


def new_owner() -> str:
    return f"{process_owner()}:{uuid.uuid4().hex[:12]}"


def gone(owner: str) -> bool:
    """Whether the process that ``owner`` names ("host:pid[:...]") is known to be
    gone: it ran on this machine and no longer exists, or it is this very
    process, asked at start-up before it holds anything (a restarted
    container often gets the same pid back). A holder on another machine is
    never known to be gone here: its lease runs out instead."""
    host, _sep, rest = owner.partition(":")
    pid_text = rest.split(":", 1)[0]
    if host != socket.gethostname()[:30] or not pid_text.isdigit():
        return False
    pid = int(pid_text)
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, under another user
        return False
    return False


def release_gone_owners() -> list[int]:
    """Hosts whose deployment lease a gone process holds (see ``gone``) are let
    go at once; their ids are returned, so that what waits there is drained."""
    freed: list[int] = []
    held = TargetHost.objects.exclude(deploy_lock_owner="").values_list("pk",
                                                                        "deploy_lock_owner")
    for host_id, owner in held:
        if gone(owner) and TargetHost.objects.filter(pk=host_id, deploy_lock_owner=owner).update(
                deploy_lock_owner="", deploy_locked_until=None):
            freed.append(host_id)
    return freed


def renew(host: TargetHost, owner: str) -> None:
    renewed = TargetHost.objects.filter(pk=host.pk, deploy_lock_owner=owner).update(
        deploy_locked_until=timezone.now() + lease_length())
    if not renewed:  # a step outlasted the lease and another deployment took it
        logger.warning("deployment lease on %s lost by %s", host, owner)


def release(host: TargetHost, owner: str) -> None:
    TargetHost.objects.filter(pk=host.pk, deploy_lock_owner=owner).update(
        deploy_lock_owner="", deploy_locked_until=None)


def take(host: TargetHost, owner: str) -> bool:
    """A guarded UPDATE takes the lease only if it is free or has run out, so two
    workers can never both hold it; a dead worker's lease simply expires."""
    now = timezone.now()
    free = Q(deploy_locked_until__isnull=True) | Q(deploy_locked_until__lte=now)
    return bool(TargetHost.objects.filter(free, pk=host.pk).update(
        deploy_lock_owner=owner, deploy_locked_until=now + lease_length()))
