"""The rollout decision, rule by rule and boundary by boundary (pure: no database)."""

from __future__ import annotations

import math
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from analytics.stats.ratio import Bounds, RatioSums, compare_rates
from rollouts.decision import (
    Action,
    Clock,
    Code,
    Evidence,
    GuardrailResult,
    GuardrailSpec,
    HealthAction,
    HealthCheck,
    HealthPolicy,
    MetricEvidence,
    PlanSpec,
    StageSpec,
    Status,
    decide,
    guardrail_status,
    metric_statuses,
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


def rate(
    control: float, treatment: float, *, half: float = 0.0, sure: bool = True
) -> MetricEvidence:
    """A rate's evidence whose ratio and difference intervals are the estimate +- ``half``
    (relative for the ratio); ``sure``: the progress interval is as narrow as the alarm one,
    else wide open (not yet conclusive)."""

    def span(estimate: float, low: float, high: float) -> Bounds:
        if sure:
            return Bounds(estimate, low, high, low, high)
        return Bounds(estimate, low, high, -math.inf, math.inf)

    ratio = treatment / control if control else (1.0 if treatment == 0 else math.inf)
    diff = treatment - control
    return MetricEvidence(
        True, control, treatment, effect=diff,
        ratio=span(ratio, ratio * (1 - half), ratio * (1 + half)),
        difference=span(diff, diff - half * abs(diff), diff + half * abs(diff)),
    )  # fmt: skip


def healthy_metric(control: float, treatment: float) -> MetricEvidence:
    return rate(control, treatment)


def latency(control: float, treatment: float, *, seq: bool = False) -> MetricEvidence:
    return MetricEvidence(
        True, control, treatment, effect=treatment - control,
        sequential_reject=seq, sequential_p=0.001 if seq else 0.5,
    )  # fmt: skip


def evidence(**metrics: MetricEvidence) -> Evidence:
    base = {
        "error_rate": healthy_metric(0.005, 0.005),
        "latency_p95": latency(200.0, 200.0),
        "conversion_rate": healthy_metric(0.10, 0.10),
    }
    base.update(metrics)
    return Evidence(
        500, 9500, 500, 9500, base, requests=20000, error_events=50, last_event_age_seconds=60
    )


def clock(hours: float, approved: bool = False) -> Clock:
    return Clock(T0 + timedelta(hours=hours), T0, stage_approved=approved)


def bad(control: float, treatment: float) -> MetricEvidence:
    """Evidence whose interval is the point itself: the lines are read on the estimate."""
    return rate(control, treatment)


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
    # After the plan's no-traffic time (24 h) the health check speaks, and alerts.
    assert verdict.codes == ((Code.HEALTH,) if alert else (Code.NO_TRAFFIC,))
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
    assert verdict.codes == (Code.HEALTH,)
    assert "sample-ratio mismatch within this stage" in verdict.reasons[0].message


def test_red_rolls_back_even_with_a_sample_ratio_mismatch() -> None:
    ev = replace(evidence(error_rate=bad(0.005, 0.04)), sample_ratio_mismatch=True)
    verdict = decide(PLAN, STAGES[0], clock(1), ev)
    assert verdict.action == Action.ROLLBACK
    assert Code.RED in verdict.codes
    assert Code.HEALTH in verdict.codes


def test_red_rolls_back_during_bake_time() -> None:
    verdict = decide(PLAN, STAGES[0], clock(0.5), evidence(error_rate=bad(0.005, 0.04)))
    assert verdict.action == Action.ROLLBACK
    assert verdict.alert


def test_an_estimate_beyond_red_with_an_interval_reaching_back_is_not_red() -> None:
    # 8x on the point estimate, but the interval runs from 0.8x: no evidence of harm yet.
    wide = rate(0.005, 0.04, half=0.9, sure=False)
    assert guardrail_status(ERR_REL, wide).status == Status.INCONCLUSIVE
    verdict = decide(PLAN, STAGES[0], clock(30), evidence(error_rate=wide))
    assert verdict.action == Action.HOLD
    assert verdict.codes == (Code.NOT_ENOUGH_DATA,)


def test_red_needs_the_interval_beyond_the_line() -> None:
    # 3x with an interval from 2.1x: red; from 1.8x: yellow.
    assert guardrail_status(ERR_REL, rate(0.01, 0.03, half=0.3)).status == Status.RED
    assert guardrail_status(ERR_REL, rate(0.01, 0.03, half=0.4)).status == Status.YELLOW


def test_evidence_without_the_threshold_is_green() -> None:
    # Significant but tiny: 0.50 % -> 0.55 % is neither 1.5x nor 1 point more.
    verdict = decide(PLAN, STAGES[0], clock(30), evidence(error_rate=bad(0.005, 0.0055)))
    assert verdict.action == Action.PROGRESS


def test_evidence_of_improvement_is_never_red() -> None:
    assert guardrail_status(ERR_REL, rate(0.04, 0.005, half=0.5)).status == Status.GREEN
    assert guardrail_status(CONV, rate(0.10, 0.20, half=0.5)).status == Status.GREEN


def test_progress_needs_the_harmful_end_short_of_red() -> None:
    open_ended = rate(0.005, 0.005, sure=False)
    assert guardrail_status(ERR_REL, open_ended).status == Status.INCONCLUSIVE
    verdict = decide(PLAN, STAGES[0], clock(30), evidence(error_rate=open_ended))
    assert verdict.action == Action.HOLD


def test_a_relative_line_is_moot_when_the_difference_is_negligible() -> None:
    # 0 errors against 0: the ratio cannot be bounded, the difference is shown to be tiny.
    zero = MetricEvidence(
        True, 0.0, 0.0, ratio=Bounds(1.0, 0.01, 90.0, 0.02, 50.0),
        difference=Bounds(0.0, -0.0004, 0.0004, -0.0003, 0.0003),
    )  # fmt: skip
    assert guardrail_status(ERR_REL, zero).status == Status.GREEN
    assert guardrail_status(ERR_ABS, zero).status == Status.GREEN


@pytest.mark.parametrize(
    ("spec", "control", "treatment", "status"),
    [
        # relative error rate: yellow from 1.5x (inclusive), red over 2x (strict)
        (ERR_REL, 0.01, 0.0149, Status.GREEN),
        (ERR_REL, 0.01, 0.015, Status.YELLOW),
        (ERR_REL, 0.01, 0.02, Status.YELLOW),
        (ERR_REL, 0.01, 0.0201, Status.RED),
        # absolute error rate: the difference to control, yellow from 1 point, red over 2
        (ERR_ABS, 0.001, 0.0109, Status.GREEN),
        (ERR_ABS, 0.001, 0.011, Status.YELLOW),
        (ERR_ABS, 0.001, 0.021, Status.YELLOW),
        (ERR_ABS, 0.001, 0.0211, Status.RED),
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


@pytest.mark.parametrize(
    ("treatment", "status"),
    [(299.0, Status.GREEN), (300.0, Status.YELLOW), (500.0, Status.YELLOW), (501.0, Status.RED)],
)
def test_latency_lines_with_evidence_that_flag_on_is_slower(
    treatment: float, status: Status
) -> None:
    assert guardrail_status(P95, latency(100.0, treatment, seq=True)).status == status


def test_latency_over_the_line_for_both_cohorts_is_no_evidence() -> None:
    assert guardrail_status(P95, latency(700.0, 700.0, seq=False)).status == Status.GREEN


def test_yellow_holds_and_alerts() -> None:
    verdict = decide(PLAN, STAGES[0], clock(30), evidence(latency_p95=latency(200, 350, seq=True)))
    assert verdict.action == Action.HOLD
    assert verdict.codes == (Code.YELLOW,)
    assert verdict.alert


def test_yellows_on_two_metrics_count_as_red() -> None:
    ev = evidence(latency_p95=latency(200, 350, seq=True), conversion_rate=bad(0.10, 0.093))
    verdict = decide(PLAN, STAGES[1], clock(30), ev)
    assert verdict.action == Action.ROLLBACK
    assert verdict.codes == (Code.SEVERAL_YELLOWS,)


def test_two_yellow_guardrails_on_one_metric_count_once() -> None:
    # 2x and +1 point: both error-rate guardrails are yellow, and they are one metric.
    ev = evidence(error_rate=bad(0.01, 0.02))
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


def test_without_a_concurrent_control_the_guardrails_do_not_apply() -> None:
    ev = replace(evidence(error_rate=bad(0.005, 0.04)), comparable=False)
    verdict = decide(PLAN, STAGES[-1], clock(30), ev)
    assert verdict.action == Action.PROGRESS
    assert verdict.completes
    assert {g.status for g in verdict.guardrails} == {Status.NOT_APPLICABLE}


# --- health checks -----------------------------------------------------------------------------


def test_no_traffic_for_the_configured_time_holds_with_a_reason() -> None:
    ev = replace(evidence(), last_event_age_seconds=25 * 3600)
    verdict = decide(PLAN, STAGES[0], clock(30), ev)
    assert verdict.action == Action.HOLD
    assert verdict.codes == (Code.HEALTH,)
    assert "no_traffic" in verdict.reasons[0].message
    quiet = replace(PLAN, health=HealthPolicy(no_traffic_seconds=48 * 3600))
    assert decide(quiet, STAGES[0], clock(30), ev).action == Action.PROGRESS


def test_no_error_events_warns_and_still_progresses() -> None:
    ev = replace(evidence(), error_events=0)
    verdict = decide(PLAN, STAGES[0], clock(30), ev)
    assert verdict.action == Action.PROGRESS
    assert [w.code for w in verdict.warnings] == [Code.HEALTH]
    assert "not one error event" in verdict.warnings[0].message


def test_missing_units_hold_naming_the_attribute() -> None:
    ev = replace(evidence(), unit_attribute="accountId", missing_unit_share=0.4)
    verdict = decide(PLAN, STAGES[0], clock(30), ev)
    assert verdict.action == Action.HOLD
    assert "'accountId'" in verdict.reasons[0].message


def test_units_in_both_variants_warn() -> None:
    ev = replace(evidence(), both_variants_units=400)
    verdict = decide(PLAN, STAGES[0], clock(30), ev)
    assert verdict.action == Action.PROGRESS
    assert "both variants" in verdict.warnings[0].message


def test_a_health_check_can_roll_back() -> None:
    policy = HealthPolicy(actions={HealthCheck.SAMPLE_RATIO_MISMATCH: HealthAction.ROLLBACK})
    ev = replace(evidence(), sample_ratio_mismatch=True, sample_ratio_p=1e-9)
    verdict = decide(replace(PLAN, health=policy), STAGES[0], clock(1), ev)
    assert verdict.action == Action.ROLLBACK


# --- properties ----------------------------------------------------------------------------------


def _cohort(pairs: list[tuple[int, int]]) -> RatioSums:
    """Per-unit (requests, events) with events never above requests."""
    return RatioSums.of_units([min(x, r) for r, x in pairs], [r for r, _ in pairs])


sums = st.lists(st.tuples(st.integers(0, 400), st.integers(0, 30)), min_size=1, max_size=60).map(
    _cohort
)
SPECS = (ERR_REL, ERR_ABS)


@given(control=sums, treatment=sums, alpha=st.sampled_from([0.001, 0.01, 0.05]))
@settings(max_examples=300, deadline=None)
def test_a_beneficial_effect_never_yields_red(
    control: RatioSums, treatment: RatioSums, alpha: float
) -> None:
    if treatment.r == 0 or control.r == 0 or treatment.x / treatment.r > control.x / control.r:
        return
    compared = compare_rates(control, treatment, alpha=alpha, beta=0.05)
    metric = MetricEvidence(True, compared.control.rate, compared.treatment.rate,
                            ratio=compared.ratio, difference=compared.difference)  # fmt: skip
    for spec in SPECS:
        assert guardrail_status(spec, metric).status not in (Status.RED, Status.YELLOW)


@given(control=sums, treatment=sums)
@settings(max_examples=300, deadline=None)
def test_zero_counts_are_defined(control: RatioSums, treatment: RatioSums) -> None:
    control = replace(control, x=0.0, xx=0.0, xr=0.0)
    compared = compare_rates(control, treatment, alpha=0.01, beta=0.05)
    for bounds in (compared.ratio, compared.difference):
        assert not math.isnan(bounds.estimate)
        assert bounds.alarm_low <= bounds.estimate <= bounds.alarm_high
    if treatment.x == 0:  # 0 errors on both sides: no evidence of harm
        metric = MetricEvidence(True, 0.0, 0.0, ratio=compared.ratio,
                                difference=compared.difference)  # fmt: skip
        for spec in SPECS:
            assert guardrail_status(spec, metric).status not in (Status.RED, Status.YELLOW)


statuses = st.sampled_from([Status.GREEN, Status.YELLOW, Status.RED, Status.INCONCLUSIVE])


@given(st.lists(st.tuples(st.sampled_from(["error_rate", "latency_p95", "conversion_rate"]),
                          statuses), min_size=1, max_size=8))  # fmt: skip
def test_a_metric_counts_once(pairs: list[tuple[str, Status]]) -> None:
    results = tuple(
        GuardrailResult(f"g{i}", status, 1.0, 1.5, 2.0, False, "", metric)
        for i, (metric, status) in enumerate(pairs)
    )
    worst = metric_statuses(results)
    assert set(worst) == {m for m, _ in pairs}
    for metric, status in worst.items():
        own = [s for m, s in pairs if m == metric]
        assert status in own
        if Status.RED in own:
            assert status == Status.RED


@given(
    users=st.integers(0, 5000),
    hours=st.floats(0, 100),
    estimate=st.floats(0.1, 10),
    half=st.floats(0, 0.99),
    srm=st.booleans(),
    failed=st.booleans(),
)
def test_invariants(
    users: int, hours: float, estimate: float, half: float, srm: bool, failed: bool
) -> None:
    metric = rate(0.01, 0.01 * estimate, half=half)
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
        assert estimate * (1 + half) <= 2.0 + 1e-9
    if verdict.action == Action.ROLLBACK:
        assert estimate * (1 - half) > 1.5
        assert not failed
    assert verdict.reasons
