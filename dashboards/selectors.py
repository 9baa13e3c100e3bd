"""The data of the dashboard pages, read from rollups, flag states and their history, and the
current stage's units from the raw events (the sample-ratio check, one grouped query).

Every function issues a fixed number of queries, whatever the number of events (tested).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from django.db.models import Max, Min, QuerySet, Sum
from django.db.models.functions import TruncHour
from django.urls import reverse

from analytics.models import EventKind, Rollup
from analytics.selectors import Window, window_totals
from analytics.services import FlagComparison, UnknownFlagError, compare_flag
from analytics.stats import ComparisonReport
from dashboards import metrics
from dashboards.rollout import (
    PlanStatus,
    StaleBadge,
    TimelineEntry,
    current_rollout,
    guardrail_verdict,
    rollout_stages,
    rollout_timeline,
    stale_badges,
)
from flags import roles
from flags.models import Environment, Flag, FlagState

WEIGHT_TOTAL = 100_000
MAX_LOOKS = 500  # the sequential tests' grid; finer than this adds nothing to a chart
HISTORY_ENTRIES = 30


def serving(state: FlagState) -> dict[str, Any]:
    """What the state serves by default now: each variant's share in percent."""
    if not state.enabled:
        return {"mode": "off", "percent": {state.off_variant: 100.0}}
    serve = state.default_serve or {}
    rollout = serve.get("rollout")
    if rollout:
        percent: dict[str, float] = defaultdict(float)
        for entry in rollout.get("variants", []):
            percent[entry["variant"]] += 100.0 * float(entry["weight"]) / WEIGHT_TOTAL
        return {"mode": "rollout", "percent": dict(percent)}
    return {"mode": "fixed", "percent": {serve.get("variant", state.off_variant): 100.0}}


def comparison_window(state: FlagState, now: datetime) -> Window | None:
    """From the flag's first exposure in the environment to now; None without exposures."""
    first = Rollup.objects.filter(
        environment_id=state.environment_id, flag_key=state.flag.key, metric=EventKind.EXPOSURE
    ).aggregate(first=Min("bucket_start"))["first"]
    if first is None:
        return None
    end = now.replace(second=0, microsecond=0) + timedelta(minutes=1)
    look = max(timedelta(minutes=5), (end - first) / MAX_LOOKS)
    return Window(first, end, look)


def _interval(value: float | None, lower: float | None, upper: float | None) -> dict[str, Any]:
    return {"value": value, "lower": lower, "upper": upper}


def _variants(report: ComparisonReport, custom: dict[str, dict[str, int]]) -> list[dict[str, Any]]:
    rows = []
    for summary in report.variants:
        p95 = next((p for p in summary.latency_percentiles if round(p.q * 100) == 95), None)
        p95_interval = _interval(*(p95.value, p95.lower, p95.upper) if p95 else (None,) * 3)
        rows.append(
            {
                "variant": summary.name,
                "is_control": summary.name == report.control,
                "exposed_users": summary.exposed_users,
                "error_rate": _interval(
                    summary.error_rate.rate,
                    summary.error_rate.ci_lower,
                    summary.error_rate.ci_upper,
                ),
                "conversion_rate": _interval(
                    summary.conversion_rate.rate,
                    summary.conversion_rate.ci_lower,
                    summary.conversion_rate.ci_upper,
                ),
                "latency_samples": summary.latency_samples,
                "p95_latency_ms": p95_interval,
                "custom": {
                    name: _interval(*_astuple(metrics.poisson_rate(counts.get(summary.name, 0),
                                                                   summary.exposed_users)))
                    for name, counts in custom.items()
                },
            }
        )  # fmt: skip
    return rows


def _astuple(estimate: metrics.RateEstimate) -> tuple[float | None, float | None, float | None]:
    return estimate.value, estimate.lower, estimate.upper


def _comparisons(
    report: ComparisonReport, custom: dict[str, dict[str, int]]
) -> list[dict[str, Any]]:
    exposed = {v.name: v.exposed_users for v in report.variants}
    rows: list[dict[str, Any]] = []
    for comparison in report.comparisons:
        for m in comparison.metrics:
            rows.append(
                {
                    "variant": comparison.variant,
                    "metric": m.metric,
                    "status": m.status,
                    "message": m.message,
                    "difference": m.difference,
                    "ci_lower": m.ci_lower,
                    "ci_upper": m.ci_upper,
                    "relative_change": m.relative_change,
                    "p_value": m.p_value,
                    "significant": m.significant,
                    # Rates differ in absolute points; latency as a ratio of geometric means.
                    "scale": "ratio" if m.metric == "latency" else "absolute",
                }
            )
        for name, counts in custom.items():
            ratio = metrics.rate_ratio(
                counts.get(report.control, 0),
                exposed.get(report.control, 0),
                counts.get(comparison.variant, 0),
                exposed.get(comparison.variant, 0),
            )
            ok = ratio.relative_change is not None
            rows.append(
                {
                    "variant": comparison.variant,
                    "metric": f"custom:{name}",
                    "status": "ok" if ok else "insufficient_data",
                    "message": "" if ok else "no events yet",
                    "difference": ratio.relative_change,
                    "ci_lower": ratio.lower,
                    "ci_upper": ratio.upper,
                    "relative_change": ratio.relative_change,
                    "p_value": None,
                    "significant": bool(
                        ok and ratio.lower is not None and ratio.upper is not None
                        and (ratio.lower > 0 or ratio.upper < 0)
                    ),
                    "scale": "ratio",
                }
            )  # fmt: skip
    return rows


def _exposures_over_time(state: FlagState, window: Window) -> dict[str, Any]:
    """Cumulative users first exposed per variant, hour by hour."""
    rows = (
        Rollup.objects.filter(
            environment_id=state.environment_id,
            flag_key=state.flag.key,
            metric=EventKind.EXPOSURE,
            bucket_start__gte=window.start,
            bucket_start__lt=window.end,
        )
        .annotate(hour=TruncHour("bucket_start"))
        .values("hour", "variant")
        .annotate(users=Sum("users"))
        .order_by("hour", "variant")
    )
    hours: list[datetime] = []
    per_hour: dict[str, dict[datetime, int]] = defaultdict(dict)
    for row in rows:
        if not hours or hours[-1] != row["hour"]:
            hours.append(row["hour"])
        per_hour[row["variant"]][row["hour"]] = int(row["users"] or 0)
    series: dict[str, list[int]] = {}
    for variant in sorted(per_hour):
        total = 0
        cumulative = []
        for hour in hours:
            total += per_hour[variant].get(hour, 0)
            cumulative.append(total)
        series[variant] = cumulative
    return {"labels": [h.isoformat() for h in hours], "series": series}


def _manual_changes(state: FlagState) -> list[TimelineEntry]:
    """The flag state's and the flag's history records, newest first, with what changed."""
    entries: list[TimelineEntry] = []
    sources: list[tuple[QuerySet[Any], tuple[str, ...], str]] = [
        (state.history.all(), ("enabled", "off_variant", "rules", "default_serve",
                               "prerequisites"), "targeting"),
        (state.flag.history.all(), ("name", "kind", "variants", "archived", "owner_id",
                                    "expires_at"), "flag"),
    ]  # fmt: skip
    for records, fields, what in sources:
        rows = list(
            records.select_related("history_user").order_by("-history_date", "-history_id")[
                : HISTORY_ENTRIES + 1
            ]
        )
        for newer, older in zip(rows, [*rows[1:], None], strict=True):
            if older is None and len(rows) > HISTORY_ENTRIES:
                break  # its predecessor is not loaded: what changed is unknown
            changed = (
                [f for f in fields if getattr(newer, f) != getattr(older, f)]
                if older is not None
                else []
            )
            title = (
                f"{what} created"
                if newer.history_type == "+"
                else f"{what}: {', '.join(changed) or 'saved'}"
            )
            user = newer.history_user
            entries.append(
                TimelineEntry(
                    at=newer.history_date,
                    kind="manual",
                    title=title,
                    detail=newer.history_change_reason or "",
                    actor=user.get_username() if user else f"({newer.history_source})",
                    evidence={"source": newer.history_source, "version": newer.version},
                )
            )
    return entries


def timeline(state: FlagState) -> tuple[list[dict[str, Any]], int]:
    """The rows, newest first, and the number of rollout records (the rows may show fewer)."""
    rollouts = rollout_timeline(state)
    entries = sorted([*rollouts.entries, *_manual_changes(state)], key=lambda e: e.at, reverse=True)
    rows = [
        {
            "at": e.at.isoformat(),
            "kind": e.kind,
            "title": e.title,
            "detail": e.detail,
            "actor": e.actor,
            "evidence": e.evidence,
        }
        for e in entries
    ]
    return rows, rollouts.total_checks


def _rollout(rollout: PlanStatus | None) -> dict[str, Any] | None:
    if rollout is None:
        return None
    url = reverse("admin:rollouts_rolloutplan_change", args=[rollout.plan.pk])
    return {**rollout.as_dict(), "url": url}


def _custom_counts(state: FlagState, window: Window) -> dict[str, dict[str, int]]:
    custom: dict[str, dict[str, int]] = defaultdict(dict)
    for totals in window_totals(state.environment_id, state.flag.key, window):
        if totals.metric.startswith(f"{EventKind.CUSTOM}:"):
            name = totals.metric.split(":", 1)[1]
            custom[name][totals.variant] = int(totals.events)
    return dict(custom)


@dataclass(frozen=True)
class StageWindow:
    """Since when the flag has served its current split, and why that moment."""

    start: datetime
    since: str  # "stage 2 (25%) started", "the targeting last changed (version 7)"


def stage_window(state: FlagState, rollout: PlanStatus | None) -> StageWindow:
    """The window of the sample-ratio check: a running (or paused) rollout's current stage, as
    long as the flag state is still what the rollout applied; otherwise (no rollout, or a hand
    edit since) the state's last change, which is when the split now served was set."""
    if (
        rollout is not None
        and rollout.active
        and rollout.stage_started_at is not None
        and rollout.plan.applied_state_version == state.version
    ):
        percent = f"{rollout.percent:g}%" if rollout.percent is not None else "?"
        return StageWindow(
            rollout.stage_started_at, f"stage {rollout.stage_number} ({percent}) started"
        )
    return StageWindow(state.updated_at, f"the targeting last changed (version {state.version})")


def _moment(at: datetime) -> str:
    utc = at.astimezone(UTC)
    return f"{utc.day} {utc:%b %H:%M} UTC"


def _sample_ratio_window(
    stage: StageWindow, result: FlagComparison | None, now: datetime
) -> dict[str, Any]:
    srm = result.sample_ratio if result else None
    unit = srm.unit_attribute if srm else None
    units = f"units ({unit})" if unit and unit != "targetingKey" else "units"
    return {
        "start": stage.start.isoformat(),
        "end": (srm.end if srm else now).isoformat(),
        "since": stage.since,
        "unit": unit,
        "both_variants": srm.both_variants if srm else 0,
        "missing_unit": srm.missing_unit if srm else 0,
        "label": f"{units} exposed since {stage.since}, {_moment(stage.start)}",
    }


def flag_dashboard(state: FlagState, now: datetime) -> dict[str, Any]:
    """Everything the per-flag page draws (the JSON its charts poll)."""
    flag = state.flag
    window = comparison_window(state, now)
    rollout = current_rollout(state, now)
    stage = stage_window(state, rollout)
    result: FlagComparison | None = None
    custom: dict[str, dict[str, int]] = {}
    if window is not None:
        try:
            result = compare_flag(state.environment_id, flag.key, window, srm_since=stage.start)
        except (UnknownFlagError, ValueError):
            result = None  # no data for the control variant yet
        custom = _custom_counts(state, window)
    report = result.report if result else None
    srm = report.sample_ratio if report else None
    verdict = guardrail_verdict(rollout, report)
    rows, total_checks = timeline(state)
    shown_checks = sum(1 for row in rows if row["kind"] != "manual")
    return {
        "flag": {
            "key": flag.key,
            "name": flag.name,
            "kind": flag.kind,
            "project": state.environment.project.key,
            "environment": state.environment.key,
        },
        "generated_at": now.isoformat(),
        "status": {"enabled": state.enabled, "version": state.version, **serving(state)},
        "rollout": _rollout(rollout),
        "window": (
            {"start": window.start.isoformat(), "end": window.end.isoformat()} if window else None
        ),
        "control": report.control if report else state.off_variant,
        "exposures": _exposures_over_time(state, window)
        if window
        else {"labels": [], "series": {}},
        "variants": _variants(report, custom) if report else [],
        "comparisons": _comparisons(report, custom) if report else [],
        "custom_metrics": sorted(custom),
        "sample_ratio": (
            {
                "status": srm.status,
                "mismatch": srm.mismatch,
                "p_value": srm.p_value,
                "sequential_p_value": srm.sequential_p_value,
                "observed": srm.observed,
                "expected": srm.expected,
            }
            if srm
            else None
        ),
        "sample_ratio_note": result.sample_ratio.note if result else "no exposures yet",
        "sample_ratio_window": _sample_ratio_window(stage, result, now),
        "guardrail": {
            "verdict": verdict.verdict,
            "source": verdict.source,
            "reasons": verdict.reasons,
            "metrics": verdict.metrics,
            "checked_at": verdict.checked_at.isoformat() if verdict.checked_at else None,
        },
        "timeline": rows,
        "timeline_checks": {"shown": shown_checks, "total": total_checks},
    }


@dataclass(frozen=True)
class IndexRow:
    flag: Flag
    states: list[tuple[Environment, FlagState | None, dict[str, Any] | None]]
    stages: dict[int, PlanStatus]  # environment id -> the newest started rollout there
    exposures_24h: int
    stale: StaleBadge | None


def flag_index(user: roles.UserLike, now: datetime) -> tuple[list[Environment], list[IndexRow]]:
    """Every visible flag with its state per environment, stage, last-24-hour exposures and
    stale badge: a fixed number of queries whatever the number of flags or events."""
    environments = list(
        roles.visible_environments(user).select_related("project").order_by(
            "project__key", "sort_order", "key"
        )
    )  # fmt: skip
    env_ids = [e.pk for e in environments]
    flags = list(
        Flag.objects.filter(project__in={e.project_id for e in environments}, archived=False)
        .select_related("project")
        .order_by("project__key", "key")
    )
    states = list(FlagState.objects.filter(environment_id__in=env_ids, flag__in=flags))
    by_key = {(s.flag_id, s.environment_id): s for s in states}
    exposures: dict[tuple[int, str], int] = defaultdict(int)
    for row in (
        Rollup.objects.filter(
            environment_id__in=env_ids,
            metric=EventKind.EXPOSURE,
            bucket_start__gte=now - timedelta(hours=24),
        )
        .values("environment__project_id", "flag_key")
        .annotate(events=Sum("events"))
    ):
        exposures[(row["environment__project_id"], row["flag_key"])] += int(row["events"] or 0)
    stages = rollout_stages(states, now)
    stale = stale_badges(flags, now)
    rows = []
    for flag in flags:
        cells: list[tuple[Environment, FlagState | None, dict[str, Any] | None]] = []
        for env in environments:
            if env.project_id != flag.project_id:
                continue
            state = by_key.get((flag.pk, env.pk))
            cells.append((env, state, serving(state) if state else None))
        rows.append(
            IndexRow(
                flag,
                cells,
                {env.pk: stages[s.pk] for env, s, _ in cells if s and s.pk in stages},
                exposures[(flag.project_id, flag.key)],
                stale.get(flag.pk),
            )
        )
    return environments, rows


def last_event_at(state: FlagState) -> datetime | None:
    found: datetime | None = Rollup.objects.filter(
        environment_id=state.environment_id, flag_key=state.flag.key
    ).aggregate(last=Max("bucket_start"))["last"]
    return found
