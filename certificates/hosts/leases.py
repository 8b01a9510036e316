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


def new_owner() -> str:
    return f"{socket.gethostname()[:30]}:{os.getpid()}:{uuid.uuid4().hex[:12]}"


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
