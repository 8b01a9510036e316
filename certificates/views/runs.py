"""Renewal runs: the history, one run's steps and log, and the small JSON the
run page polls every second while the run is open (live progress)."""

from django.http import JsonResponse
from django.shortcuts import render
from django.views.decorators.cache import never_cache

from accounts.tenancy import get_scoped_or_404, scoped

from ..formatting import format_datetime, format_time, localize_instants
from ..models import RenewalRun, RenewalStep
from .common import enter, paginate, portal_view, query_without_page, roles


def collapse(steps):
    """A step that started and then finished is one line, showing how it ended;
    a step still started (or cut short by a crash) shows as started."""
    shown = []
    for step in steps:
        previous = shown[-1] if shown else None
        if (previous is not None and previous.status == RenewalStep.Status.STARTED
                and (previous.name, previous.host_id) == (step.name, step.host_id)):
            shown[-1] = step
        else:
            shown.append(step)
    return shown


def _fetch(request, pk):
    run = get_scoped_or_404(
        RenewalRun.objects.select_related("certificate__organization", "requested_by",
                                          "version"),
        request.user, pk=pk)
    enter(request, run.certificate.organization)
    return run


@portal_view
def run_list(request):
    runs = scoped(RenewalRun, request.user).filter(
        certificate__organization=request.organization)
    status = request.GET.get("status", "")
    if status in RenewalRun.Status.values:
        runs = runs.filter(status=status)
    return render_page(request, "certificates/run_list.html", {
        "page": paginate(request, runs.select_related("certificate", "requested_by")),
        "query": query_without_page(request),
        "statuses": RenewalRun.Status.choices,
        "status": status,
    })


def render_page(request, template, context):
    return render(request, template, {**context, **roles(request)})


@portal_view
def run_detail(request, pk):
    run = _fetch(request, pk)
    return render_page(request, "certificates/run_detail.html", {
        "run": run, "steps": collapse(run.steps.select_related("host"))})


@never_cache
@portal_view
def run_steps(request, pk):
    """{status, open, steps: [...]}: what the run page needs to redraw its steps."""
    run = _fetch(request, pk)
    steps = collapse(run.steps.select_related("host"))
    return JsonResponse({
        "id": run.pk,
        "status": run.status,
        "status_label": str(run.get_progress_display()),
        "stalled": run.is_stalled,
        "open": run.is_open,
        "error": localize_instants(str(run.error_message)),
        "started_at": format_datetime(run.started_at),
        "finished_at": format_datetime(run.finished_at),
        "steps": [{
            "id": step.pk,
            "name": step.name,
            "label": str(step.get_name_display()),
            "status": step.status,
            "status_label": str(step.get_status_display()),
            "host": step.host.name if step.host else "",
            "detail": localize_instants(str(step.detail_message)),
            "at": format_time(step.at),
        } for step in steps],
    })
