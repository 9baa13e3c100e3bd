"""The rollout decision: a pure function of the plan, the stage, the clock and the evidence.

No Django, no database, no clock of its own: ``decide`` is tested exhaustively on plain values,
and the check service, the simulator and the benchmark all call this same function.

Rules (docs/rollouts.md explains them to product managers):

* the evidence compares flag-on with control over the current stage only (the same hours, the
  same split), per randomization unit, with always-valid one-sided bounds (rollouts.evidence);
* red: the harmful side of the interval lies beyond the red line (the error-rate ratio's lower
  bound above 2x, the difference's lower bound above the absolute line); red rolls back;
* yellow: the same bound beyond the yellow line; it holds and alerts; yellows on two or more
  different metrics count as red;
* a metric counts once, whatever guardrails read it: its worst guardrail speaks for it;
* green, and only green, lets a stage progress: the interval's harmful end is short of the red
  line (at the progress level); otherwise the stage waits for more evidence (inconclusive);
* a beneficial effect never counts as harm (only the harmful side is read);
* at a split where one cohort is not served (100 %), there is nothing concurrent to compare:
  the guardrails do not apply and the health checks still do;
* health checks (no traffic, no error events, units missing, sample-ratio mismatch, units in both
  variants) warn, hold or roll back as the plan says;
* progress needs the bake time elapsed, the minimum sample of units exposed in this stage,
  every applicable guardrail green, the plan's approval where the environment requires it, and a
  person's approval where the stage asks for one.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Protocol

from analytics.stats.ratio import Bounds


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
    HEALTH = "health"
    ALL_GREEN = "all_green"
    COMPLETE = "complete"


class Status(StrEnum):
    GREEN = "green"
    YELLOW = "yellow"
    RED = "red"
    INSUFFICIENT = "insufficient_data"
    INCONCLUSIVE = "inconclusive"  # enough data, but the interval still reaches the red line
    NOT_APPLICABLE = "not_applicable"  # no concurrent control at this split


# A relative line on a rate is moot when the difference itself is shown to be negligible: at
# tiny base rates (0 errors against 0) a ratio can never be bounded, and a rise of under a tenth
# of a point is not what a "2x" line protects against.
NEGLIGIBLE_RATE_DIFFERENCE = 0.001


class HealthAction(StrEnum):
    WARN = "warn"
    HOLD = "hold"
    ROLLBACK = "rollback"


class HealthCheck(StrEnum):
    NO_TRAFFIC = "no_traffic"
    NO_ERROR_EVENTS = "no_error_events"
    UNIT_MISMATCH = "unit_mismatch"
    SAMPLE_RATIO_MISMATCH = "sample_ratio_mismatch"
    BOTH_VARIANTS = "both_variants"


DEFAULT_HEALTH_ACTIONS: Mapping[HealthCheck, HealthAction] = {
    HealthCheck.NO_TRAFFIC: HealthAction.HOLD,
    HealthCheck.NO_ERROR_EVENTS: HealthAction.WARN,
    HealthCheck.UNIT_MISMATCH: HealthAction.HOLD,
    HealthCheck.SAMPLE_RATIO_MISMATCH: HealthAction.HOLD,
    HealthCheck.BOTH_VARIANTS: HealthAction.WARN,
}
# Shares of the stage's events (units) tolerated before a finding: a few stray events (an old
# SDK, a context built before login) are not a broken setup.
UNIT_MISSING_TOLERANCE = 0.01
BOTH_VARIANTS_TOLERANCE = 0.01


@dataclass(frozen=True)
class HealthPolicy:
    no_traffic_seconds: float = 24 * 3600.0
    actions: Mapping[HealthCheck, HealthAction] = field(
        default_factory=lambda: dict(DEFAULT_HEALTH_ACTIONS)
    )

    def action(self, check: HealthCheck) -> HealthAction:
        return self.actions.get(check, DEFAULT_HEALTH_ACTIONS[check])


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
    health: HealthPolicy = field(default_factory=HealthPolicy)


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
    """What the comparison over the current stage says about one metric, flag-on against control.

    Rates carry ``ratio`` (flag-on / control) and ``difference`` (flag-on - control) with their
    always-valid bounds; a relative guardrail reads the ratio, an absolute one the difference.
    Latency carries no bounds: its absolute line is on flag-on's own p95, red only with the
    sequential test's evidence that flag-on is slower than control over the same window.
    """

    ok: bool  # False: not enough data for a test
    control_value: float | None = None
    treatment_value: float | None = None
    effect: float = 0.0  # the estimate, flag-on minus control (sign: which is higher)
    ratio: Bounds | None = None
    difference: Bounds | None = None
    fixed_significant: bool = False  # latency: fixed-horizon test at this look
    sequential_reject: bool = False  # latency: always-valid test, flag-on differs
    sequential_p: float | None = None
    message: str = ""


@dataclass(frozen=True)
class Evidence:
    """Units are the plan's randomization unit (``bucket_by``), counted within the current stage
    (exposed since it started, at its split); a unit seen under both variants is in neither."""

    treatment_users: int  # flag-on units exposed in the current stage
    control_users: int
    stage_treatment_users: int  # the same counts, as the stage gates read them
    stage_control_users: int
    metrics: Mapping[str, MetricEvidence] = field(default_factory=dict)
    sample_ratio_mismatch: bool = False
    sample_ratio_p: float | None = None
    failure: str = ""  # non-empty: the analysis could not run
    comparable: bool = True  # both cohorts are served at this split
    requests: int = 0  # requests of the flag in the stage, both cohorts
    error_events: int = 0
    unit_attribute: str = "targetingKey"
    missing_unit_share: float = 0.0  # of the flag's events in the stage
    both_variants_units: int = 0
    last_event_age_seconds: float | None = None  # None: no event of the flag in the stage


@dataclass(frozen=True)
class GuardrailResult:
    label: str
    status: Status
    value: float | None
    yellow: float
    red: float
    sequential_evidence: bool
    message: str
    metric: str = ""  # the evidence key: guardrails on one metric count once
    low: float | None = None  # the always-valid interval the lines are read on
    high: float | None = None

    def as_dict(self) -> dict[str, object]:
        return {
            "guardrail": self.label,
            "status": str(self.status),
            "value": _finite(self.value),
            "interval": [_finite(self.low), _finite(self.high)],
            "yellow": self.yellow,
            "red": self.red,
            "sequential_evidence": self.sequential_evidence,
            "message": self.message,
        }


def _finite(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else value


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
    warnings: tuple[Reason, ...] = ()  # health findings whose action is to warn

    @property
    def codes(self) -> tuple[Code, ...]:
        return tuple(r.code for r in self.reasons)


def observed_value(spec: GuardrailSpec, metric: MetricEvidence) -> float | None:
    """The estimate compared with the lines: the ratio or difference to control for a rate, or
    flag-on's own value (latency's absolute line)."""
    interval = _interval(spec, metric)
    if interval is not None:
        return interval.estimate
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


def _interval(spec: GuardrailSpec, metric: MetricEvidence) -> Bounds | None:
    return metric.ratio if spec.mode == "relative" else metric.difference


_EPSILON = 1e-9  # ratios like 0.09 / 0.10 must land on the line they are meant to be on


def _beyond(spec: GuardrailSpec, value: float, threshold: float, *, strict: bool) -> bool:
    excess = value - threshold if spec.higher_is_worse else threshold - value
    tolerance = _EPSILON * max(1.0, abs(threshold))
    return excess > tolerance if strict else excess >= -tolerance


def _fmt(value: float) -> str:
    return f"{value:.4g}"


def guardrail_status(spec: GuardrailSpec, metric: MetricEvidence | None) -> GuardrailResult:
    """Green, yellow, red, inconclusive or insufficient data for one guardrail.

    Read on the interval: red when its harmful side lies beyond the red line, yellow beyond the
    yellow line, green when the harmful end (at the progress level) is short of the red line.
    """
    key = spec.evidence_key

    def result(
        status: Status, value: float | None, msg: str, bounds: Bounds | None = None
    ) -> GuardrailResult:
        low = high = None
        if bounds is not None:
            low, high = bounds.alarm_low, bounds.alarm_high
        evidence = status in (Status.RED, Status.YELLOW)
        return GuardrailResult(
            spec.label, status, value, spec.yellow, spec.red, evidence, msg, key, low, high
        )

    if metric is None or not metric.ok:
        message = metric.message if metric is not None else "no data for this metric"
        return result(Status.INSUFFICIENT, None, message or "not enough data")
    interval = _interval(spec, metric)
    if interval is None:
        return _latency_status(spec, metric, result)
    worse = ">" if spec.higher_is_worse else "<"
    # The bound nearest to harmless on the harmful side, and the worst plausible value.
    alarm = interval.alarm_low if spec.higher_is_worse else interval.alarm_high
    clear = interval.clear_high if spec.higher_is_worse else interval.clear_low
    shown = (
        f"{_fmt(interval.estimate)} (interval {_fmt(interval.alarm_low)} to "
        f"{_fmt(interval.alarm_high)}; red {worse} {_fmt(spec.red)})"
    )
    if _beyond(spec, alarm, spec.red, strict=True):
        return result(Status.RED, interval.estimate, f"{shown}: beyond red", interval)
    if _beyond(spec, alarm, spec.yellow, strict=False):
        return result(Status.YELLOW, interval.estimate, f"{shown}: beyond yellow", interval)
    if not _beyond(spec, clear, spec.red, strict=False) or _moot(spec, metric):
        return result(Status.GREEN, interval.estimate, shown, interval)
    return result(
        Status.INCONCLUSIVE,
        interval.estimate,
        f"{shown}: could still reach the red line ({_fmt(clear)}); waiting for more evidence",
        interval,
    )


def _moot(spec: GuardrailSpec, metric: MetricEvidence) -> bool:
    """A relative line on a rate whose difference is shown to be negligible."""
    difference = metric.difference
    if spec.mode != "relative" or difference is None:
        return False
    if spec.higher_is_worse:
        return difference.clear_high < NEGLIGIBLE_RATE_DIFFERENCE
    return difference.clear_low > -NEGLIGIBLE_RATE_DIFFERENCE


def _latency_status(
    spec: GuardrailSpec, metric: MetricEvidence, result: _Result
) -> GuardrailResult:
    """Flag-on's own p95 against the lines: red only with the always-valid test's evidence that
    flag-on is slower than control over the same window (a slowdown of both is no evidence)."""
    value = observed_value(spec, metric)
    if value is None:
        return result(Status.INSUFFICIENT, None, "no value for this metric")
    worse = metric.effect > 0 if spec.higher_is_worse else metric.effect < 0
    shown = f"{_fmt(value)} (red {'>' if spec.higher_is_worse else '<'} {_fmt(spec.red)})"
    if _beyond(spec, value, spec.red, strict=True) and worse and metric.sequential_reject:
        return result(Status.RED, value, f"{shown}, sequential test: flag-on slower")
    if _beyond(spec, value, spec.yellow, strict=False) and worse and metric.sequential_reject:
        return result(Status.YELLOW, value, f"{shown}: in the yellow band, flag-on slower")
    return result(Status.GREEN, value, shown)


class _Result(Protocol):
    def __call__(
        self, status: Status, value: float | None, msg: str, bounds: Bounds | None = None
    ) -> GuardrailResult: ...


_RANK = {
    Status.RED: 4,
    Status.YELLOW: 3,
    Status.INSUFFICIENT: 2,
    Status.INCONCLUSIVE: 1,
    Status.GREEN: 0,
    Status.NOT_APPLICABLE: 0,
}


def metric_statuses(results: tuple[GuardrailResult, ...]) -> dict[str, Status]:
    """Each metric's one status: the worst of the guardrails that read it."""
    worst: dict[str, Status] = {}
    for r in results:
        if r.metric not in worst or _RANK[r.status] > _RANK[worst[r.metric]]:
            worst[r.metric] = r.status
    return worst


def health_findings(
    plan: PlanSpec, clock: Clock, evidence: Evidence
) -> list[tuple[HealthCheck, str]]:
    """The health checks that fail at this check, with what people should be told."""
    policy = plan.health
    found: list[tuple[HealthCheck, str]] = []
    age = evidence.last_event_age_seconds
    silent = clock.baked_seconds if age is None else age
    if silent >= policy.no_traffic_seconds:
        found.append((HealthCheck.NO_TRAFFIC,
                      f"no event of this flag for {_duration(silent)} "
                      f"(expected within {_duration(policy.no_traffic_seconds)})"))  # fmt: skip
    if evidence.requests > 0 and evidence.error_events == 0 and _gates_met(plan, evidence):
        found.append((HealthCheck.NO_ERROR_EVENTS,
                      f"{evidence.requests} requests in this stage and not one error event: is "
                      "the service sending its errors? The error guardrails cannot see harm "
                      "without them"))  # fmt: skip
    if evidence.missing_unit_share > UNIT_MISSING_TOLERANCE:
        found.append((HealthCheck.UNIT_MISMATCH,
                      f"{evidence.missing_unit_share:.0%} of this flag's events carry no "
                      f"{evidence.unit_attribute!r}, the unit the plan randomizes on: they are "
                      "left out of the comparison"))  # fmt: skip
    if evidence.sample_ratio_mismatch:
        found.append((HealthCheck.SAMPLE_RATIO_MISMATCH, _srm_message(evidence)))
    units = evidence.stage_treatment_users + evidence.stage_control_users
    both = evidence.both_variants_units
    if both > BOTH_VARIANTS_TOLERANCE * max(units + both, 1) and both > 1:
        found.append((HealthCheck.BOTH_VARIANTS,
                      f"{both} units were served both variants in this stage (left out): "
                      f"is every service bucketing by {evidence.unit_attribute!r}?"))  # fmt: skip
    return found


def _gates_met(plan: PlanSpec, evidence: Evidence) -> bool:
    smallest = min((s.min_sample for s in plan.stages), default=0)
    return evidence.stage_treatment_users >= max(smallest, 1)


def _hold(
    reasons: list[Reason],
    results: tuple[GuardrailResult, ...],
    warnings: tuple[Reason, ...],
    *,
    alert: bool = False,
) -> Verdict:
    return Verdict(Action.HOLD, tuple(reasons), results, alert=alert, warnings=warnings)


def decide(plan: PlanSpec, stage: StageSpec, clock: Clock, evidence: Evidence) -> Verdict:
    """The one verdict for this check, with every reason that led to it."""
    if evidence.failure:
        return _hold(
            [Reason(Code.ANALYSIS_FAILED, f"the analysis failed: {evidence.failure}")],
            (),
            (),
            alert=True,
        )
    if evidence.comparable:
        results = tuple(
            guardrail_status(g, evidence.metrics.get(g.evidence_key)) for g in plan.guardrails
        )
    else:
        results = tuple(
            GuardrailResult(
                g.label,
                Status.NOT_APPLICABLE,
                None,
                g.yellow,
                g.red,
                False,
                "no concurrent control at this split: nothing to compare",
                g.evidence_key,
            )
            for g in plan.guardrails
        )
    findings = health_findings(plan, clock, evidence)
    by_action: dict[HealthAction, list[Reason]] = {a: [] for a in HealthAction}
    for check, message in findings:
        by_action[plan.health.action(check)].append(
            Reason(Code.HEALTH, f"health check {check}: {message}")
        )
    warnings = tuple(by_action[HealthAction.WARN])
    statuses = metric_statuses(results)
    reds = [r for r in results if r.status == Status.RED]
    if reds or by_action[HealthAction.ROLLBACK]:
        reasons = [Reason(Code.RED, f"{r.label}: {r.message}") for r in reds]
        reasons += by_action[HealthAction.ROLLBACK] + by_action[HealthAction.HOLD]
        return Verdict(Action.ROLLBACK, tuple(reasons), results, alert=True, warnings=warnings)
    yellow_metrics = [m for m, s in statuses.items() if s == Status.YELLOW]
    yellows = [r for r in results if r.status == Status.YELLOW]
    if len(yellow_metrics) >= 2:
        reason = Reason(
            Code.SEVERAL_YELLOWS,
            f"{len(yellow_metrics)} metrics are yellow, which counts as red: "
            + ", ".join(r.label for r in yellows),
        )
        return Verdict(
            Action.ROLLBACK, (reason, *by_action[HealthAction.HOLD]), results, alert=True,
            warnings=warnings,
        )  # fmt: skip
    if by_action[HealthAction.HOLD]:
        return _hold(by_action[HealthAction.HOLD], results, warnings, alert=True)
    baked = clock.baked_seconds
    overdue = baked >= stage.bake_seconds + plan.insufficient_traffic_extension_seconds
    if evidence.stage_treatment_users == 0 and evidence.stage_control_users == 0:
        message = "no exposures in this stage yet"
        if overdue:
            message += "; the bake time and its extension are over: holding, people alerted"
        return _hold([Reason(Code.NO_TRAFFIC, message)], results, warnings, alert=overdue)
    if yellows:
        reasons = [Reason(Code.YELLOW, f"{r.label}: {r.message}") for r in yellows]
        return _hold(reasons, results, warnings, alert=True)
    if baked < stage.bake_seconds:
        return _hold(
            [
                Reason(
                    Code.BAKING, f"bake time {_duration(baked)} of {_duration(stage.bake_seconds)}"
                )
            ],
            results,
            warnings,
        )
    missing = [r for r in results if r.status in (Status.INSUFFICIENT, Status.INCONCLUSIVE)]
    if evidence.stage_treatment_users < stage.min_sample or missing:
        parts = []
        if evidence.stage_treatment_users < stage.min_sample:
            parts.append(
                f"{evidence.stage_treatment_users} flag-on units in this stage, "
                f"{stage.min_sample} needed"
            )
        parts += [f"{r.label}: {r.message}" for r in missing]
        message = "; ".join(parts)
        if overdue:
            message += "; extended past the bake time and still short: holding, people alerted"
        else:
            message += "; bake time extended while evidence comes in"
        return _hold([Reason(Code.NOT_ENOUGH_DATA, message)], results, warnings, alert=overdue)
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
            warnings,
        )
    if stage.requires_approval and not clock.stage_approved:
        return _hold(
            [Reason(Code.AWAITING_APPROVAL, "this stage needs a person's approval to progress")],
            results,
            warnings,
        )
    last = stage.position >= len(plan.stages) - 1
    what = "all guardrails green" if evidence.comparable else "no control to compare at this split"
    reasons = [Reason(Code.ALL_GREEN, f"bake time over, minimum sample reached, {what}")]
    if last:
        reasons.append(Reason(Code.COMPLETE, "the last stage is done: the rollout is complete"))
    return Verdict(
        Action.PROGRESS, tuple(reasons), results, alert=last, completes=last, warnings=warnings
    )


def _srm_message(evidence: Evidence) -> str:
    p = evidence.sample_ratio_p
    shown = f" (p = {p:.2g})" if p is not None else ""
    return (
        f"sample-ratio mismatch within this stage{shown}: the units exposed do not follow the "
        "configured split, so the comparison cannot be trusted"
    )


def _duration(seconds: float) -> str:
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 60:.0f} min"
