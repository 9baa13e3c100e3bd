"""Where a rollout stands now: its stage, the bake time left, the guardrails of its latest check
and when the next decision is due. Read by the flag's admin page and the dashboards.

``plan_status`` is pure (plan, stages, latest check and clock in, a summary out); ``latest_plans``
and ``load`` read what it needs in a fixed number of queries whatever the number of plans,
stages or checks.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db.models import F, Window
from django.db.models.functions import RowNumber

from rollouts.models import FULL, RolloutCheck, RolloutPlan, RolloutStage

Status = RolloutPlan.Status
SEVERITY = {"red": 3, "yellow": 2, "insufficient_data": 1, "green": 0}


@dataclass(frozen=True)
class MetricStatus:
    """One guardrail at the latest check: its colour, the value compared with its lines, and
    the flag-on and control values of the metric it reads."""

    guardrail: str
    metric: str
    status: str  # green | yellow | red | insufficient_data
    value: float | None
    yellow: float | None
    red: float | None
    treatment: float | None
    control: float | None
    message: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "guardrail": self.guardrail, "metric": self.metric, "status": self.status,
            "value": self.value, "yellow": self.yellow, "red": self.red,
            "treatment": self.treatment, "control": self.control, "message": self.message,
        }  # fmt: skip


@dataclass(frozen=True)
class PlanStatus:
    plan: RolloutPlan
    stage_number: int  # 1-based; 0 before the first stage is applied
    stage_count: int
    stage_name: str
    percent: float | None  # of the default rollout served the flag in the current stage
    stage_started_at: datetime | None
    bake_ends_at: datetime | None  # in wall time (the demo's time scale applied)
    bake_left_seconds: float | None
    requires_approval: bool
    next_check_at: datetime | None
    last_check: RolloutCheck | None  # the latest check that judged the guardrails
    metrics: tuple[MetricStatus, ...]

    @property
    def active(self) -> bool:
        return self.plan.status in RolloutPlan.ACTIVE

    @property
    def overall(self) -> str:
        """The worst guardrail colour of the latest check (insufficient data without one)."""
        if not self.metrics:
            return "insufficient_data"
        return max((m.status for m in self.metrics), key=lambda s: SEVERITY.get(s, 1))

    @property
    def label(self) -> str:
        """Short, for the index: "stage 2 of 4 · 25%", "rolled back at stage 1 (5%)"."""
        where = f"stage {self.stage_number} of {self.stage_count}"
        percent = f"{self.percent:g}%" if self.percent is not None else "?"
        status = self.plan.status
        if status == Status.RUNNING:
            return f"{where} · {percent}"
        if status == Status.PAUSED:
            return f"{where} · {percent} · paused"
        if status == Status.COMPLETED:
            return f"completed · {percent}"
        if status == Status.DRAFT:
            return "draft (not started)"
        verb = "rolled back" if status == Status.ROLLED_BACK else "aborted"
        return f"{verb} at stage {self.stage_number} ({percent})"

    @property
    def next_decision(self) -> str:
        """When the rollout next decides, in words."""
        if self.plan.status == Status.PAUSED:
            return "none while paused: resume the rollout to go on"
        if self.plan.status != Status.RUNNING:
            return f"none: the rollout is {self.plan.get_status_display().lower()}"
        check = self.next_check_at.strftime("%Y-%m-%d %H:%M:%S UTC") if self.next_check_at else "?"
        text = f"next check {check}"
        if self.bake_ends_at is not None and self.bake_left_seconds:
            text += (
                f"; it may progress from {self.bake_ends_at.strftime('%Y-%m-%d %H:%M:%S UTC')}"
                " (end of the bake time)"
            )
        if self.requires_approval:
            text += "; leaving this stage needs a person's approval"
        return text

    def as_dict(self) -> dict[str, Any]:
        plan = self.plan
        return {
            "plan": plan.pk, "name": plan.name, "status": plan.status,
            "status_display": plan.get_status_display(), "status_reason": plan.status_reason,
            "label": self.label, "stage": self.stage_number, "stage_count": self.stage_count,
            "stage_name": self.stage_name, "percent": self.percent,
            "stage_started_at": _iso(self.stage_started_at),
            "bake_ends_at": _iso(self.bake_ends_at),
            "bake_left_seconds": self.bake_left_seconds, "next_check_at": _iso(self.next_check_at),
            "next_decision": self.next_decision, "requires_approval": self.requires_approval,
            "overall": self.overall,
        }  # fmt: skip


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def metric_statuses(check: RolloutCheck | None) -> tuple[MetricStatus, ...]:
    """The check's guardrail results, each with the metric's flag-on and control values."""
    if check is None:
        return ()
    tests: dict[str, Any] = (check.samples or {}).get("tests", {})
    out = []
    for g in check.guardrails or []:
        label = str(g.get("guardrail", ""))
        metric = label.rsplit(" (", 1)[0]  # labels read "error_rate (relative)"
        test = tests.get(metric, {})
        out.append(
            MetricStatus(
                guardrail=label, metric=metric, status=str(g.get("status", "insufficient_data")),
                value=g.get("value"), yellow=g.get("yellow"), red=g.get("red"),
                treatment=test.get("treatment"), control=test.get("control"),
                message=str(g.get("message", "")),
            )
        )  # fmt: skip
    return tuple(out)


def plan_status(
    plan: RolloutPlan,
    stages: Sequence[RolloutStage],
    last_check: RolloutCheck | None,
    now: datetime,
    time_scale: float = 1.0,
) -> PlanStatus:
    ordered = sorted(stages, key=lambda s: s.position)
    index = plan.current_stage
    stage = ordered[index] if 0 <= index < len(ordered) else None
    bake_ends_at = bake_left = None
    if stage is not None and plan.stage_started_at is not None:
        # A time scale above 1 (the demo) bakes faster than the wall clock.
        bake_ends_at = plan.stage_started_at + timedelta(
            seconds=stage.bake_seconds / max(time_scale, 1e-9)
        )
        bake_left = max(0.0, (bake_ends_at - now).total_seconds())
    return PlanStatus(
        plan=plan,
        stage_number=index + 1 if stage is not None else 0,
        stage_count=len(ordered),
        stage_name=str(stage) if stage is not None else "",
        percent=stage.weight * 100 / FULL if stage is not None else None,
        stage_started_at=plan.stage_started_at,
        bake_ends_at=bake_ends_at,
        bake_left_seconds=bake_left,
        requires_approval=bool(stage and stage.requires_approval),
        next_check_at=plan.next_check_at if plan.status == Status.RUNNING else None,
        last_check=last_check,
        metrics=metric_statuses(last_check),
    )


# --- Reads -------------------------------------------------------------------------------------


def latest_plans(state_ids: Iterable[int], *, active_only: bool = False) -> list[RolloutPlan]:
    """The newest started plan of each flag state (or its active one): one query."""
    plans = RolloutPlan.objects.filter(flag_state_id__in=list(state_ids)).exclude(
        status=Status.DRAFT
    )
    if active_only:
        plans = plans.filter(status__in=RolloutPlan.ACTIVE)
    ranked = plans.annotate(
        rank=Window(RowNumber(), partition_by=[F("flag_state_id")], order_by=F("created_at").desc())
    ).filter(rank=1)
    return list(ranked.select_related("flag_state__environment__project", "flag_state__flag"))


def latest_guardrail_checks(plans: Sequence[RolloutPlan]) -> dict[int, RolloutCheck]:
    """Plan id -> its latest check that judged the guardrails: one query."""
    if not plans:
        return {}
    checks = (
        RolloutCheck.objects.filter(plan__in=[p.pk for p in plans])
        .exclude(guardrails=[])
        .annotate(
            rank=Window(RowNumber(), partition_by=[F("plan_id")], order_by=F("sequence").desc())
        )
        .filter(rank=1)
    )
    return {c.plan_id: c for c in checks}


def load(plans: Sequence[RolloutPlan], now: datetime, time_scale: float = 1.0) -> list[PlanStatus]:
    """The status of each plan: two queries (stages, latest checks) whatever their number."""
    if not plans:
        return []
    stages: dict[int, list[RolloutStage]] = defaultdict(list)
    for stage in RolloutStage.objects.filter(plan__in=[p.pk for p in plans]):
        stages[stage.plan_id].append(stage)
    checks = latest_guardrail_checks(plans)
    return [plan_status(p, stages[p.pk], checks.get(p.pk), now, time_scale) for p in plans]
