"""The rollout decision, rule by rule and boundary by boundary (pure: no database)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rollouts.decision import (
    Action,
    Clock,
    Code,
    Evidence,
    GuardrailSpec,
    MetricEvidence,
    PlanSpec,
    StageSpec,
    Status,
    decide,
    guardrail_status,
    observed_value,
)

T0 = datetime(2026, 1, 1, tzinfo=UTC)
DAY = 86_400.0
ERR_REL = GuardrailSpec("error_rate", "relative", yellow=1.5, red=2.0)
ERR_ABS = GuardrailSpec("error_rate", "absolute", yellow=0.01, red=0.02)
P95 = GuardrailSpec("latency_p95", "absolute", yellow=300.0, red=500.0)
CONV = GuardrailSpec("conversion_rate", "relative", yellow=0.95, red=0.90, higher_is_worse=False)
STAGES = tuple(StageSpec(i, w, DAY, 200) for i, w in enumerate((5000, 25000, 50000, 100000)))
PLAN = PlanSpec(STAGES, (ERR_REL, ERR_ABS, P95, CONV), insufficient_traffic_extension_seconds=DAY)


def healthy_metric(control: float, treatment: float) -> MetricEvidence:
    return MetricEvidence(True, control, treatment, effect=treatment - control)


def evidence(**metrics: MetricEvidence) -> Evidence:
    base = {
        "error_rate": healthy_metric(0.005, 0.005),
        "latency_p95": healthy_metric(200.0, 200.0),
        "conversion_rate": healthy_metric(0.10, 0.10),
    }
    base.update(metrics)
    return Evidence(1000, 19000, 500, 9500, base)


def clock(hours: float, approved: bool = False) -> Clock:
    return Clock(T0 + timedelta(hours=hours), T0, stage_approved=approved)


def bad(
    control: float, treatment: float, *, seq: bool = True, fixed: bool = True
) -> MetricEvidence:
    return MetricEvidence(
        True, control, treatment, effect=treatment - control,
        fixed_significant=fixed, sequential_reject=seq, sequential_p=0.001 if seq else 0.5,
    )  # fmt: skip


def test_all_green_after_bake_progresses() -> None:
    verdict = decide(PLAN, STAGES[0], clock(24), evidence())
    assert verdict.action == Action.PROGRESS
    assert verdict.codes == (Code.ALL_GREEN,)
    assert not verdict.completes


def test_progress_from_the_last_stage_completes_and_alerts() -> None:
    verdict = decide(PLAN, STAGES[-1], clock(24), evidence())
    assert verdict.action == Action.PROGRESS
    assert verdict.completes
    assert verdict.alert
    assert Code.COMPLETE in verdict.codes


@pytest.mark.parametrize(("hours", "action"), [(23.99, Action.HOLD), (24.0, Action.PROGRESS)])
def test_bake_time_boundary(hours: float, action: Action) -> None:
    verdict = decide(PLAN, STAGES[0], clock(hours), evidence())
    assert verdict.action == action
    if action == Action.HOLD:
        assert verdict.codes == (Code.BAKING,)
        assert not verdict.alert


def test_time_scale_accelerates_bake() -> None:
    fast = Clock(T0 + timedelta(minutes=2), T0, time_scale=720)
    assert decide(PLAN, STAGES[0], fast, evidence()).action == Action.PROGRESS


@pytest.mark.parametrize(("users", "action"), [(199, Action.HOLD), (200, Action.PROGRESS)])
def test_min_sample_boundary(users: int, action: Action) -> None:
    ev = replace(evidence(), stage_treatment_users=users)
    verdict = decide(PLAN, STAGES[0], clock(30), ev)
    assert verdict.action == action
    if action == Action.HOLD:
        assert verdict.codes == (Code.NOT_ENOUGH_DATA,)
        assert not verdict.alert  # extended, not yet alerted


@pytest.mark.parametrize(("hours", "alert"), [(47.99, False), (48.0, True)])
def test_insufficient_traffic_extends_then_holds_and_alerts(hours: float, alert: bool) -> None:
    ev = replace(evidence(), stage_treatment_users=10)
    verdict = decide(PLAN, STAGES[0], clock(hours), ev)
    assert verdict.action == Action.HOLD
    assert verdict.codes == (Code.NOT_ENOUGH_DATA,)
    assert verdict.alert is alert


def test_a_guardrail_without_enough_data_is_not_green() -> None:
    ev = evidence(latency_p95=MetricEvidence(False, message="not enough data: 12 samples"))
    verdict = decide(PLAN, STAGES[0], clock(30), ev)
    assert verdict.action == Action.HOLD
    assert verdict.codes == (Code.NOT_ENOUGH_DATA,)
    assert "12 samples" in verdict.reasons[0].message


@pytest.mark.parametrize(("hours", "alert"), [(1, False), (48, True)])
def test_no_traffic_holds(hours: float, alert: bool) -> None:
    ev = Evidence(0, 0, 0, 0, {})
    verdict = decide(PLAN, STAGES[0], clock(hours), ev)
    assert verdict.action == Action.HOLD
    assert verdict.codes == (Code.NO_TRAFFIC,)
    assert verdict.alert is alert


def test_failed_analysis_holds_and_never_progresses() -> None:
    ev = replace(evidence(), failure="database unavailable")
    verdict = decide(PLAN, STAGES[0], clock(100), ev)
    assert verdict.action == Action.HOLD
    assert verdict.codes == (Code.ANALYSIS_FAILED,)
    assert verdict.alert


def test_sample_ratio_mismatch_never_progresses() -> None:
    ev = replace(evidence(), sample_ratio_mismatch=True, sample_ratio_p=1e-9)
    verdict = decide(PLAN, STAGES[0], clock(100), ev)
    assert verdict.action == Action.HOLD
    assert verdict.codes == (Code.SAMPLE_RATIO_MISMATCH,)


def test_red_rolls_back_even_with_a_sample_ratio_mismatch() -> None:
    ev = replace(evidence(error_rate=bad(0.005, 0.04)), sample_ratio_mismatch=True)
    verdict = decide(PLAN, STAGES[0], clock(1), ev)
    assert verdict.action == Action.ROLLBACK
    assert Code.RED in verdict.codes
    assert Code.SAMPLE_RATIO_MISMATCH in verdict.codes


def test_red_rolls_back_during_bake_time() -> None:
    verdict = decide(PLAN, STAGES[0], clock(0.5), evidence(error_rate=bad(0.005, 0.04)))
    assert verdict.action == Action.ROLLBACK
    assert verdict.alert


def test_red_threshold_without_sequential_evidence_is_only_yellow() -> None:
    verdict = decide(PLAN, STAGES[0], clock(30), evidence(error_rate=bad(0.005, 0.04, seq=False)))
    assert verdict.action == Action.HOLD
    assert verdict.codes[0] == Code.YELLOW


def test_evidence_without_the_threshold_is_green() -> None:
    # Significant but tiny: 0.50 % -> 0.55 % is neither 1.5x nor over 1 %.
    verdict = decide(PLAN, STAGES[0], clock(30), evidence(error_rate=bad(0.005, 0.0055)))
    assert verdict.action == Action.PROGRESS


def test_evidence_of_improvement_is_never_red() -> None:
    better = MetricEvidence(True, 0.04, 0.005, effect=-0.035, fixed_significant=True,
                            sequential_reject=True)  # fmt: skip
    assert guardrail_status(ERR_REL, better).status == Status.GREEN


@pytest.mark.parametrize(
    ("spec", "control", "treatment", "status"),
    [
        # relative error rate: yellow from 1.5x (inclusive), red over 2x (strict)
        (ERR_REL, 0.01, 0.0149, Status.GREEN),
        (ERR_REL, 0.01, 0.015, Status.YELLOW),
        (ERR_REL, 0.01, 0.02, Status.YELLOW),
        (ERR_REL, 0.01, 0.0201, Status.RED),
        # absolute error rate: yellow from 1 %, red over 2 %
        (ERR_ABS, 0.001, 0.0099, Status.GREEN),
        (ERR_ABS, 0.001, 0.01, Status.YELLOW),
        (ERR_ABS, 0.001, 0.02, Status.YELLOW),
        (ERR_ABS, 0.001, 0.0201, Status.RED),
        # p95: yellow from 300 ms, red over 500 ms
        (P95, 100.0, 299.0, Status.GREEN),
        (P95, 100.0, 300.0, Status.YELLOW),
        (P95, 100.0, 500.0, Status.YELLOW),
        (P95, 100.0, 501.0, Status.RED),
        # conversion (lower is worse): yellow from -5 %, red below -10 %
        (CONV, 0.10, 0.0951, Status.GREEN),
        (CONV, 0.10, 0.095, Status.YELLOW),
        (CONV, 0.10, 0.090, Status.YELLOW),
        (CONV, 0.10, 0.0899, Status.RED),
    ],
)
def test_threshold_boundaries(
    spec: GuardrailSpec, control: float, treatment: float, status: Status
) -> None:
    result = guardrail_status(spec, bad(control, treatment))
    assert result.status == status, result


def test_yellow_holds_and_alerts() -> None:
    verdict = decide(PLAN, STAGES[0], clock(30), evidence(latency_p95=bad(200, 350, seq=False)))
    assert verdict.action == Action.HOLD
    assert verdict.codes == (Code.YELLOW,)
    assert verdict.alert


def test_yellow_needs_significance_at_this_look() -> None:
    noisy = bad(200, 350, seq=False, fixed=False)
    assert guardrail_status(P95, noisy).status == Status.GREEN


def test_several_yellows_with_evidence_count_as_red() -> None:
    ev = evidence(latency_p95=bad(200, 350), conversion_rate=bad(0.10, 0.093))
    verdict = decide(PLAN, STAGES[1], clock(30), ev)
    assert verdict.action == Action.ROLLBACK
    assert verdict.codes == (Code.SEVERAL_YELLOWS,)


def test_one_backed_yellow_and_one_unbacked_yellow_hold() -> None:
    ev = evidence(latency_p95=bad(200, 350), conversion_rate=bad(0.10, 0.093, seq=False))
    verdict = decide(PLAN, STAGES[1], clock(30), ev)
    assert verdict.action == Action.HOLD
    assert verdict.codes == (Code.YELLOW, Code.YELLOW)


def test_stage_approval_is_required_where_asked() -> None:
    stages = (replace(STAGES[0], requires_approval=True), *STAGES[1:])
    plan = replace(PLAN, stages=stages)
    held = decide(plan, stages[0], clock(30), evidence())
    assert held.action == Action.HOLD
    assert held.codes == (Code.AWAITING_APPROVAL,)
    assert decide(plan, stages[0], clock(30, approved=True), evidence()).action == Action.PROGRESS


def test_an_approval_environment_needs_the_plan_approved() -> None:
    plan = replace(PLAN, environment_requires_approval=True)
    held = decide(plan, STAGES[0], clock(30), evidence())
    assert held.action == Action.HOLD
    assert held.codes == (Code.PLAN_NOT_APPROVED,)
    approved = replace(plan, plan_approved=True)
    assert decide(approved, STAGES[0], clock(30), evidence()).action == Action.PROGRESS


def test_a_rollback_never_waits_for_approval() -> None:
    plan = replace(PLAN, environment_requires_approval=True)
    verdict = decide(plan, STAGES[0], clock(1), evidence(error_rate=bad(0.005, 0.04)))
    assert verdict.action == Action.ROLLBACK


def test_observed_value_with_a_zero_control() -> None:
    assert observed_value(ERR_REL, MetricEvidence(True, 0.0, 0.0)) == 1.0
    assert observed_value(ERR_REL, MetricEvidence(True, 0.0, 0.01)) == float("inf")
    assert observed_value(ERR_REL, MetricEvidence(True, None, 0.01)) is None


@given(
    users=st.integers(0, 5000),
    hours=st.floats(0, 100),
    control=st.floats(0, 0.5),
    treatment=st.floats(0, 0.5),
    seq=st.booleans(),
    fixed=st.booleans(),
    srm=st.booleans(),
    failed=st.booleans(),
)
def test_invariants(
    users: int, hours: float, control: float, treatment: float,
    seq: bool, fixed: bool, srm: bool, failed: bool,
) -> None:  # fmt: skip
    metric = MetricEvidence(True, control, treatment, treatment - control, fixed, seq)
    ev = replace(
        evidence(error_rate=metric), stage_treatment_users=users, sample_ratio_mismatch=srm,
        failure="boom" if failed else "",
    )  # fmt: skip
    verdict = decide(PLAN, STAGES[0], clock(hours), ev)
    if verdict.action == Action.PROGRESS:
        assert hours >= 24
        assert users >= 200
        assert not srm
        assert not failed
        assert all(g.status == Status.GREEN for g in verdict.guardrails)
    if verdict.action == Action.ROLLBACK:
        assert seq
        assert treatment > control
        assert not failed
    assert verdict.reasons
