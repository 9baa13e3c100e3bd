"""The rollouts panel of a flag's admin page (registered with flags.admin_panels): for each
environment with a running or paused rollout, the current stage, the guardrails of the latest
check against control and when the next decision is due. A fixed number of queries."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest
from django.template.loader import render_to_string
from django.urls import NoReverseMatch, reverse
from django.utils import timezone

from flags import roles
from flags.admin.base import user_of
from flags.models import Flag
from rollouts import status
from rollouts.services import time_scale

COLOURS = {
    "green": ("#dff0d8", "#2b6a2b"),
    "yellow": ("#fcf4dc", "#7a5b00"),
    "red": ("#f8d7da", "#8a1f28"),
    "insufficient_data": ("#eee", "#555"),
    "inconclusive": ("#e8eef7", "#2c4a73"),
    "not_applicable": ("#eee", "#555"),
}


def duration(seconds: float) -> str:
    """ "2 d 3 h", "5 h 12 min", "40 min", "under a minute"."""
    minutes = int(seconds // 60)
    days, rest = divmod(minutes, 24 * 60)
    hours, minutes = divmod(rest, 60)
    if days:
        return f"{days} d {hours} h"
    if hours:
        return f"{hours} h {minutes} min"
    return f"{minutes} min" if minutes else "under a minute"


def _format(metric: str, value: float | None) -> str:
    if value is None:
        return "—"
    if metric.startswith("latency"):
        return f"{value:.0f} ms"
    if metric.startswith("custom"):
        return f"{value:.3g} per user"
    return f"{100 * value:.2f}%"


def describe(m: status.MetricStatus) -> str:
    """A guardrail's value against its red line, and the metric, flag-on against control."""
    versus = f"flag-on {_format(m.metric, m.treatment)} vs control {_format(m.metric, m.control)}"
    if m.value is None:
        return versus
    if m.guardrail.endswith("(relative)"):
        red = "" if m.red is None else f" (red at {m.red:g}x)"
        return f"{m.value:.3g}x control{red} · {versus}"
    return f"{_format(m.metric, m.value)} (red at {_format(m.metric, m.red)}) · {versus}"


def _dashboard_url(plan: Any) -> str:
    state = plan.flag_state
    try:  # the dashboards app draws this rollout; a URL name, not an import of a higher layer
        return reverse(
            "dashboards:flag", args=[state.flag.project.key, state.flag.key, state.environment.key]
        )
    except NoReverseMatch:
        return ""


def _row(s: status.PlanStatus) -> dict[str, Any]:
    plan = s.plan
    return {
        "status": s,
        "environment": plan.flag_state.environment,
        "bake_left": duration(s.bake_left_seconds) if s.bake_left_seconds else "",
        "metrics": [
            {
                "m": m,
                "text": describe(m),
                "colours": COLOURS.get(m.status, COLOURS["insufficient_data"]),
            }
            for m in s.metrics
        ],
        "plan_url": reverse("admin:rollouts_rolloutplan_change", args=[plan.pk]),
        "dashboard_url": _dashboard_url(plan),
    }


def flag_rollouts_panel(flag: Flag, request: HttpRequest) -> str:
    user = user_of(request)
    states = [s for s in flag.states.select_related("environment") if roles.can(user, "view", s)]
    plans = status.latest_plans([s.pk for s in states], active_only=True)
    plans.sort(key=lambda p: (p.flag_state.environment.sort_order, p.flag_state.environment.key))
    rows = [_row(s) for s in status.load(plans, timezone.now(), time_scale())]
    context = {"rows": rows, "add_url": reverse("admin:rollouts_rolloutplan_add")}
    return render_to_string("admin/rollouts/flag_panel.html", context, request=request)
