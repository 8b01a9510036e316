"""The life of an incident, each change one guarded UPDATE that says whether it
took (models/incidents.py draws it)."""

from __future__ import annotations

from django.utils import timezone

from certificates.models import Incident

Status = Incident.Status


def pause(incident_id: int) -> bool:
    return bool(Incident.objects.filter(pk=incident_id, status=Status.RUNNING).update(
        status=Status.PAUSED))


def resume(incident_id: int) -> bool:
    return bool(Incident.objects.filter(pk=incident_id, status=Status.PAUSED).update(
        status=Status.RUNNING))


def complete(incident_id: int) -> bool:
    return bool(Incident.objects.filter(pk=incident_id, status=Status.RUNNING).update(
        status=Status.COMPLETED, finished_at=timezone.now()))
