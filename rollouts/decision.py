"""The rollout decision: a pure function of the plan, the stage, the clock and the evidence.

No Django, no database, no clock of its own: ``decide`` is tested exhaustively on plain values,
and the check service, the simulator and the benchmark all call this same function.

Rules (docs/rollouts.md explains them to product managers):

* red needs the sequential test's evidence (always valid under repeated looks, so checking every
  few minutes does not inflate false rollbacks) plus the threshold; red rolls back;
* yellow (beyond the yellow band, flag-on worse, significant at this look) holds and alerts;
  two or more yellows that also carry sequential evidence count as red;
* a sample-ratio mismatch or a failed analysis never progresses;
* progress needs the bake time elapsed, the minimum sample, every guardrail green, the plan's
  approval where the environment requires approval, and a person's approval where the stage
  asks for one.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum


class Action(StrEnum):
    PROGRESS = "progress"
    HOLD = "hold"
    ROLLBACK = "rollback"


class Code(StrEnum):
    RED = "red"
    SEVERAL_YELLOWS = "several_yellows"
    YELLOW = "yellow"
    SAMPLE_RATIO_MISMATCH = "sample_ratio_mismatch"
    ANALYSIS_FAILED = "analysis_failed"
    NO_TRAFFIC = "no_traffic"
    NOT_ENOUGH_DATA = "not_enough_data"
    BAKING = "baking"
    PLAN_NOT_APPROVED = "plan_not_approved"
    AWAITING_APPROVAL = "awaiting_approval"
    ALL_GREEN = "all_green"
    COMPLETE = "complete"


class Status(StrEnum):
    GREEN = "green"
    YELLOW = "yellow"
    RED = "red"
    INSUFFICIENT = "insufficient_data"


@dataclass(frozen=True)
class GuardrailSpec:
    """``mode`` "relative": ``value`` is flag-on / control (2.0 = twice control). "absolute": the
    flag-on cohort's own value (a rate, or milliseconds for latency)."""

    metric: str  # error_rate | latency_p95 | conversion_rate | custom
    mode: str  # relative | absolute
    yellow: float
    red: float
    higher_is_worse: bool = True
    custom_name: str = ""

    @property
    def label(self) -> str:
        name = f"custom:{self.custom_name}" if self.metric == "custom" else self.metric
        return f"{name} ({self.mode})"

    @property
    def evidence_key(self) -> str:
        """The metric of the comparison this guardrail reads."""
        return f"custom:{self.custom_name}" if self.metric == "custom" else self.metric


@dataclass(frozen=True)
class StageSpec:
    position: int
    weight: int  # 1/100,000
    bake_seconds: float
    min_sample: int
    requires_approval: bool = False


@dataclass(frozen=True)
class PlanSpec:
    stages: tuple[StageSpec, ...]
    guardrails: tuple[GuardrailSpec, ...]
    insufficient_traffic_extension_seconds: float
    environment_requires_approval: bool = False
    plan_approved: bool = False


@dataclass(frozen=True)
class Clock:
    now: datetime
    stage_started_at: datetime
    time_scale: float = 1.0  # > 1 accelerates bake time (the demo)
    stage_approved: bool = False  # a person approved leaving the current stage

    @property
    def baked_seconds(self) -> float:
        return max(0.0, (self.now - self.stage_started_at).total_seconds() * self.time_scale)


@dataclass(frozen=True)
class MetricEvidence:
    """What the analytics comparison says about one metric, flag-on against control."""

    ok: bool  # False: not enough data for a test
    control_value: float | None = None
    treatment_value: float | None = None
    effect: float = 0.0  # the tests' estimate, flag-on minus control (sign: which is higher)
    fixed_significant: bool = False  # fixed-horizon test at this look
    sequential_reject: bool = False  # always-valid test: evidence under repeated looks
    sequential_p: float | None = None
    message: str = ""


@dataclass(frozen=True)
class Evidence:
    treatment_users: int  # flag-on users since the rollout started
    control_users: int
    stage_treatment_users: int  # flag-on users first seen in the current stage
    stage_control_users: int
    metrics: Mapping[str, MetricEvidence] = field(default_factory=dict)
    sample_ratio_mismatch: bool = False
    sample_ratio_p: float | None = None
    failure: str = ""  # non-empty: the analysis could not run


@dataclass(frozen=True)
class GuardrailResult:
    label: str
    status: Status
    value: float | None
    yellow: float
    red: float
    sequential_evidence: bool
    message: str

    def as_dict(self) -> dict[str, object]:
        return {
            "guardrail": self.label,
            "status": str(self.status),
            "value": None if self.value is None or math.isnan(self.value) else self.value,
            "yellow": self.yellow,
            "red": self.red,
            "sequential_evidence": self.sequential_evidence,
            "message": self.message,
        }


@dataclass(frozen=True)
class Reason:
    code: Code
    message: str

    def as_dict(self) -> dict[str, str]:
        return {"code": str(self.code), "message": self.message}


@dataclass(frozen=True)
class Verdict:
    action: Action
    reasons: tuple[Reason, ...]
    guardrails: tuple[GuardrailResult, ...] = ()
    alert: bool = False  # tell people (hold with alert)
    completes: bool = False  # progressing past the last stage: the rollout is complete

    @property
    def codes(self) -> tuple[Code, ...]:
        return tuple(r.code for r in self.reasons)


def observed_value(spec: GuardrailSpec, metric: MetricEvidence) -> float | None:
    """The value compared with the thresholds: flag-on's own, or its ratio to control."""
    treatment = metric.treatment_value
    if treatment is None:
        return None
    if spec.mode == "absolute":
        return treatment
    control = metric.control_value
    if control is None:
        return None
    if control == 0:
        return 1.0 if treatment == 0 else math.inf
    return treatment / control


_EPSILON = 1e-9  # ratios like 0.09 / 0.10 must land on the line they are meant to be on


def _beyond(spec: GuardrailSpec, value: float, threshold: float, *, strict: bool) -> bool:
    excess = value - threshold if spec.higher_is_worse else threshold - value
    tolerance = _EPSILON * max(1.0, abs(threshold))
    return excess > tolerance if strict else excess >= -tolerance


def _fmt(value: float) -> str:
    return f"{value:.4g}"


def guardrail_status(spec: GuardrailSpec, metric: MetricEvidence | None) -> GuardrailResult:
    """Green, yellow, red or insufficient data for one guardrail.

    The red line is strict (error rate *over* 2 %), the yellow line inclusive (1-2 % is yellow),
    as in the seed's table.
    """

    def result(status: Status, value: float | None, evidence: bool, msg: str) -> GuardrailResult:
        return GuardrailResult(spec.label, status, value, spec.yellow, spec.red, evidence, msg)

    if metric is None or not metric.ok:
        message = metric.message if metric is not None else "no data for this metric"
        return result(Status.INSUFFICIENT, None, False, message or "not enough data")
    value = observed_value(spec, metric)
    if value is None:
        return result(Status.INSUFFICIENT, None, False, "no value for this metric")
    worse = metric.effect > 0 if spec.higher_is_worse else metric.effect < 0
    evidence = metric.sequential_reject and worse
    shown = f"{_fmt(value)} (red {'>' if spec.higher_is_worse else '<'} {_fmt(spec.red)})"
    if _beyond(spec, value, spec.red, strict=True) and evidence:
        return result(Status.RED, value, evidence, f"{shown}, sequential test rejects")
    if _beyond(spec, value, spec.yellow, strict=False) and worse and metric.fixed_significant:
        why = (
            "beyond red without sequential evidence"
            if _beyond(spec, value, spec.red, strict=True)
            else "in the yellow band"
        )
        return result(Status.YELLOW, value, evidence, f"{shown}: {why}")
    return result(Status.GREEN, value, evidence, shown)


def _hold(
    reasons: list[Reason], results: tuple[GuardrailResult, ...], *, alert: bool = False
) -> Verdict:
    return Verdict(Action.HOLD, tuple(reasons), results, alert=alert)


def decide(plan: PlanSpec, stage: StageSpec, clock: Clock, evidence: Evidence) -> Verdict:
    """The one verdict for this check, with every reason that led to it."""
    if evidence.failure:
        return _hold(
            [Reason(Code.ANALYSIS_FAILED, f"the analysis failed: {evidence.failure}")],
            (),
            alert=True,
        )
    results = tuple(
        guardrail_status(g, evidence.metrics.get(g.evidence_key)) for g in plan.guardrails
    )
    reds = [r for r in results if r.status == Status.RED]
    srm = (
        [Reason(Code.SAMPLE_RATIO_MISMATCH, _srm_message(evidence))]
        if evidence.sample_ratio_mismatch
        else []
    )
    if reds:
        reasons = [Reason(Code.RED, f"{r.label}: {r.message}") for r in reds]
        return Verdict(Action.ROLLBACK, tuple(reasons + srm), results, alert=True)
    yellows = [r for r in results if r.status == Status.YELLOW]
    backed = [r for r in yellows if r.sequential_evidence]
    if len(backed) >= 2:
        names = ", ".join(r.label for r in backed)
        reason = Reason(
            Code.SEVERAL_YELLOWS, f"{len(backed)} yellow guardrails count as red: {names}"
        )
        return Verdict(Action.ROLLBACK, (reason, *srm), results, alert=True)
    if srm:
        return _hold(srm, results, alert=True)
    baked = clock.baked_seconds
    overdue = baked >= stage.bake_seconds + plan.insufficient_traffic_extension_seconds
    if evidence.stage_treatment_users == 0 and evidence.stage_control_users == 0:
        message = "no exposures in this stage yet"
        if overdue:
            message += "; the bake time and its extension are over: holding, people alerted"
        return _hold([Reason(Code.NO_TRAFFIC, message)], results, alert=overdue)
    if yellows:
        reasons = [Reason(Code.YELLOW, f"{r.label}: {r.message}") for r in yellows]
        return _hold(reasons, results, alert=True)
    if baked < stage.bake_seconds:
        return _hold(
            [
                Reason(
                    Code.BAKING, f"bake time {_duration(baked)} of {_duration(stage.bake_seconds)}"
                )
            ],
            results,
        )
    missing = [r for r in results if r.status == Status.INSUFFICIENT]
    if evidence.stage_treatment_users < stage.min_sample or missing:
        parts = []
        if evidence.stage_treatment_users < stage.min_sample:
            parts.append(
                f"{evidence.stage_treatment_users} flag-on users in this stage, "
                f"{stage.min_sample} needed"
            )
        parts += [f"{r.label}: {r.message}" for r in missing]
        message = "; ".join(parts)
        if overdue:
            message += "; extended past the bake time and still short: holding, people alerted"
        else:
            message += "; bake time extended while traffic comes in"
        return _hold([Reason(Code.NOT_ENOUGH_DATA, message)], results, alert=overdue)
    if plan.environment_requires_approval and not plan.plan_approved:
        return _hold(
            [
                Reason(
                    Code.PLAN_NOT_APPROVED,
                    "the environment requires approval and the plan as it "
                    "stands is not approved: request its approval",
                )
            ],
            results,
        )
    if stage.requires_approval and not clock.stage_approved:
        return _hold(
            [Reason(Code.AWAITING_APPROVAL, "this stage needs a person's approval to progress")],
            results,
        )
    last = stage.position >= len(plan.stages) - 1
    reasons = [
        Reason(Code.ALL_GREEN, "bake time over, minimum sample reached, all guardrails green")
    ]
    if last:
        reasons.append(Reason(Code.COMPLETE, "the last stage is done: the rollout is complete"))
    return Verdict(Action.PROGRESS, tuple(reasons), results, alert=last, completes=last)


def _srm_message(evidence: Evidence) -> str:
    p = evidence.sample_ratio_p
    shown = f" (p = {p:.2g})" if p is not None else ""
    return (
        f"sample-ratio mismatch{shown}: exposures do not follow the configured split, so the "
        "comparison cannot be trusted"
    )


def _duration(seconds: float) -> str:
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 60:.0f} min"
