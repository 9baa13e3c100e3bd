"""Dashboard pages inside the admin: the flag index, a flag's page, its JSON and CSV.

Wrapped in ``admin.site.admin_view``: an anonymous visitor goes to the admin login, and a
signed-in user needs the viewer role on the environment (403 otherwise).
"""

from __future__ import annotations

import csv
from typing import Any

from django.conf import settings
from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone

from dashboards import selectors
from flags import roles
from flags.models import FlagState


def _state(request: HttpRequest, project: str, flag: str, environment: str) -> FlagState:
    state = get_object_or_404(
        FlagState.objects.select_related("flag", "environment__project"),
        flag__project__key=project,
        flag__key=flag,
        environment__key=environment,
    )
    if not roles.can(request.user, "view", state):
        raise PermissionDenied("You need at least the viewer role in this environment.")
    return state


def _index(request: HttpRequest) -> HttpResponse:
    environments, rows = selectors.flag_index(request.user, timezone.now())
    context = {
        **admin.site.each_context(request),
        "title": "Flag dashboards",
        "environments": environments,
        "rows": rows,
    }
    return TemplateResponse(request, "dashboards/index.html", context)


def _flag_page(request: HttpRequest, project: str, flag: str, environment: str) -> HttpResponse:
    state = _state(request, project, flag, environment)
    args = [project, flag, environment]
    siblings = state.flag.states.select_related("environment").order_by("environment__sort_order")
    context = {
        **admin.site.each_context(request),
        "title": f"{state.flag.name} in {state.environment.name}",
        "state": state,
        "siblings": [s for s in siblings if roles.can(request.user, "view", s)],
        "data_url": reverse("dashboards:flag-data", args=args),
        "csv_url": reverse("dashboards:flag-csv", args=args),
        "poll_seconds": settings.DASHBOARD_POLL_SECONDS,
    }
    return TemplateResponse(request, "dashboards/flag.html", context)


def _flag_data(request: HttpRequest, project: str, flag: str, environment: str) -> JsonResponse:
    state = _state(request, project, flag, environment)
    response = JsonResponse(selectors.flag_dashboard(state, timezone.now()))
    response["Cache-Control"] = "no-store"
    return response


CSV_COLUMNS = [
    "variant", "is_control", "exposed_users",
    "error_rate", "error_rate_lower", "error_rate_upper",
    "conversion_rate", "conversion_rate_lower", "conversion_rate_upper",
    "p95_latency_ms", "p95_latency_ms_lower", "p95_latency_ms_upper",
]  # fmt: skip


def _flag_csv(request: HttpRequest, project: str, flag: str, environment: str) -> HttpResponse:
    """The per-variant table, one row per variant, with each difference against control."""
    state = _state(request, project, flag, environment)
    data = selectors.flag_dashboard(state, timezone.now())
    metrics = ["error_rate", "conversion_rate", "latency"] + [
        f"custom:{name}" for name in data["custom_metrics"]
    ]
    header = list(CSV_COLUMNS)
    for name in data["custom_metrics"]:
        header += [f"{name}_per_user", f"{name}_per_user_lower", f"{name}_per_user_upper"]
    for metric in metrics:
        header += [f"{metric}_vs_control", f"{metric}_vs_control_lower",
                   f"{metric}_vs_control_upper", f"{metric}_p_value"]  # fmt: skip
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    filename = f"{project}-{flag}-{environment}-variants.csv"
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    writer = csv.writer(response)
    writer.writerow(header)
    diffs = {(c["variant"], c["metric"]): c for c in data["comparisons"]}
    for row in data["variants"]:
        values: list[Any] = [row["variant"], row["is_control"], row["exposed_users"]]
        for key in ("error_rate", "conversion_rate", "p95_latency_ms"):
            values += [row[key]["value"], row[key]["lower"], row[key]["upper"]]
        for name in data["custom_metrics"]:
            custom = row["custom"][name]
            values += [custom["value"], custom["lower"], custom["upper"]]
        for metric in metrics:
            diff = diffs.get((row["variant"], metric), {})
            values += [diff.get("difference"), diff.get("ci_lower"), diff.get("ci_upper"),
                       diff.get("p_value")]  # fmt: skip
        writer.writerow(["" if v is None else v for v in values])
    return response


index = admin.site.admin_view(_index)
flag_page = admin.site.admin_view(_flag_page)
flag_data = admin.site.admin_view(_flag_data)
flag_csv = admin.site.admin_view(_flag_csv)
