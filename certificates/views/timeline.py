"""The dashboard's expiry timeline: an SVG drawn on the server.

Every certificate expiring in the next twelve months is a mark on its day,
in a lane of its state; hovering a mark shows its name and date (an SVG
<title>). Built as a string rather than in a template loop: ten thousand marks
render in milliseconds this way.
"""

import datetime

from django.urls import reverse
from django.utils import formats, timezone
from django.utils.html import escape
from django.utils.safestring import mark_safe
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy as _lazy

from ..states import State

WIDTH, LEFT, RIGHT, TOP, LANE = 1000, 78, 10, 26, 26
MONTHS = 12
# Lanes from top to bottom; a state that cannot lie in the future has none.
LANES = [State.EXPIRING, State.DUE, State.FAILING, State.RENEWING, State.VALID]
SHORT_LABELS = {
    State.EXPIRING: _lazy("Expiring"), State.DUE: _lazy("Due"), State.FAILING: _lazy("Failing"),
    State.RENEWING: _lazy("Renewing"), State.VALID: _lazy("Valid"),
}


def _x(when, start, end):
    span = (end - start).total_seconds()
    return LEFT + (WIDTH - LEFT - RIGHT) * (when - start).total_seconds() / span


def _jitter(pk: int) -> float:
    # Spread marks of the same day over the lane's height, the same way each time.
    return ((pk * 2654435761) % 1000) / 1000 - 0.5


def render(rows, *, now=None) -> str:
    """`rows`: (pk, common_name, expires_at, state) of certificates expiring
    between now and twelve months ahead."""
    now = now or timezone.now()
    start = timezone.localtime(now)
    end = start + datetime.timedelta(days=365)
    height = TOP + LANE * len(LANES) + 8
    lane_of = {state.value: i for i, state in enumerate(LANES)}
    parts = [
        f'<svg class="timeline" viewBox="0 0 {WIDTH} {height}" role="img" '
        f'preserveAspectRatio="xMinYMin meet" aria-label="{escape(_("Expiry timeline"))}">'
    ]
    for i, state in enumerate(LANES):
        y = TOP + LANE * i
        parts.append(f'<rect class="lane" x="{LEFT}" y="{y}" width="{WIDTH - LEFT - RIGHT}" '
                     f'height="{LANE - 4}" rx="4"/>')
        parts.append(f'<text class="lane-label" x="{LEFT - 8}" y="{y + LANE / 2 + 2}" '
                     f'text-anchor="end">{escape(SHORT_LABELS[state])}</text>')
    month = start.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    for _i in range(MONTHS + 1):
        if month >= start:
            x = _x(month, start, end)
            parts.append(f'<line class="tick" x1="{x:.1f}" x2="{x:.1f}" y1="{TOP - 6}" '
                         f'y2="{height - 8}"/>')
            label = formats.date_format(month, "M")
            if month.month == 1:
                label = f"{month.year} {label}"
            parts.append(f'<text class="tick-label" x="{x + 3:.1f}" y="{TOP - 10}">'
                         f'{escape(label)}</text>')
        month = (month + datetime.timedelta(days=32)).replace(day=1)
    x_now = _x(start, start, end)
    parts.append(f'<line class="now" x1="{x_now:.1f}" x2="{x_now:.1f}" y1="{TOP - 6}" '
                 f'y2="{height - 8}"/>')
    detail = reverse("certificates:certificate", args=[0])[:-2]
    for pk, name, expires_at, state in rows:
        lane = lane_of.get(state, lane_of[State.VALID.value])
        x = _x(max(min(expires_at, end), start), start, end)
        y = TOP + LANE * lane + (LANE - 4) / 2 + _jitter(pk) * (LANE - 12)
        when = formats.date_format(timezone.localtime(expires_at), "DATE_FORMAT")
        parts.append(
            f'<a href="{detail}{pk}/"><circle class="mark {state}" cx="{x:.1f}" cy="{y:.1f}" '
            f'r="4"><title>{escape(name)} · {escape(when)}</title></circle></a>'
        )
    parts.append("</svg>")
    return mark_safe("".join(parts))
