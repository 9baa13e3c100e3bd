"""From analytics to the decision's Evidence: flag-on against control within the current stage.

The estimator (docs/statistics.md says it for people):

* **Concurrent cohorts.** Each check compares the two cohorts over the same window: from the
  current stage's start to now, at the stage's one split. Nothing from an earlier stage, a dark
  launch before the plan or a previous attempt enters it, so an incident that moves both cohorts
  alike moves the two estimates alike and is no evidence against the flag.
* **The randomization unit is the unit of analysis.** The plan buckets by ``bucket_by``; rates
  are ratios of sums over those units with a cluster-robust variance (analytics.stats.ratio), so
  one heavy account sending many failing requests counts as what it is: one account.
* **One-sided, always-valid bounds.** A rate carries the flag-on/control ratio and the flag-on
  minus control difference, each with bounds that hold at every check however often it runs
  (a confidence sequence). The false-rollback budget (the plan's ``false_positive_rate``) is
  split evenly over the stages where both cohorts are served and the metrics tested, so the
  whole rollout stays within it.

``evidence_from_stage`` is pure (the simulator's light path calls it); ``gather`` reads the
stage's units from the raw events and its latency histograms from the rollups.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np
from flagsite_sdk.engine.types import BUCKETS

from analytics.look_cache import totals_with_latency
from analytics.selectors import Window
from analytics.stage_units import CONVERSION_RATE, ERROR_RATE, StageUnits, read_stage_units
from analytics.stats import ComparisonConfig, VariantSeries
from analytics.stats.compare import compare_latency
from analytics.stats.histogram import N_BUCKETS, LatencyLooks, percentile
from analytics.stats.ratio import RatioSums, compare_rates
from analytics.stats.sequential import sequential_srm_p_value
from flags.models import FlagState
from rollouts.decision import Evidence, GuardrailSpec, MetricEvidence

MAX_LOOKS = 500
P95 = 0.95
MIN_LOOK = timedelta(minutes=5)
# The progress level: a stage progresses only when the interval at this level shows the harm
# short of the red line, so a flag truly at the red line progresses out of a stage with
# probability at most 5 %, however often it is checked.
PROGRESS_LEVEL = 0.05
SRM_ALPHA = 0.001
# The mixture's scale on the log-ratio when the plan has no relative line on the metric.
DEFAULT_RATIO_TAU = math.log(2.0)


@dataclass(frozen=True)
class EvidenceRequest:
    on_variant: str
    off_variant: str
    guardrails: tuple[GuardrailSpec, ...]
    false_positive_rate: float
    design_sample: int
    comparable_stages: int = 1  # stages whose split serves both cohorts: the rate is split
    unit_attribute: str = "targetingKey"


def test_alpha(request: EvidenceRequest) -> float:
    """Each metric's share of the false-rollback budget at one stage (Bonferroni over the metrics
    tested and the comparable stages; two guardrails on one metric share its test)."""
    tests = {g.evidence_key for g in request.guardrails}
    return request.false_positive_rate / max(1, len(tests)) / max(1, request.comparable_stages)


def comparison_config(request: EvidenceRequest) -> ComparisonConfig:
    return ComparisonConfig(
        alpha=test_alpha(request), design_information=float(request.design_sample)
    )


def window_for(started_at: datetime, now: datetime) -> Window:
    """From the stage's start to now, with at most MAX_LOOKS looks (whole minutes)."""
    start = datetime.fromtimestamp(int(started_at.timestamp()) // 60 * 60, UTC)
    span = max(now - start, timedelta(minutes=1))
    minutes = max(MIN_LOOK, span / MAX_LOOKS).total_seconds() / 60
    return Window(start, now, timedelta(minutes=math.ceil(minutes)))


def _scales(request: EvidenceRequest, metric: str) -> tuple[float, float]:
    """The mixture's scales (log-ratio, difference): the plan's own red lines for the metric,
    so the bounds are tightest for effects near the lines that matter."""
    ratio_tau, difference_tau = DEFAULT_RATIO_TAU, 0.02
    for g in request.guardrails:
        if g.evidence_key != metric:
            continue
        if g.mode == "relative" and g.red > 0 and g.red != 1:
            ratio_tau = abs(math.log(g.red))
        elif g.mode == "absolute" and g.red != 0:
            difference_tau = abs(g.red)
    return ratio_tau, difference_tau


def rate_evidence(
    control: RatioSums, treatment: RatioSums, request: EvidenceRequest, metric: str
) -> MetricEvidence:
    if control.r <= 0 or treatment.r <= 0:
        return MetricEvidence(ok=False, message="no requests from one cohort in this stage yet")
    ratio_tau, difference_tau = _scales(request, metric)
    comparison = compare_rates(
        control, treatment, alpha=test_alpha(request), beta=PROGRESS_LEVEL,
        ratio_tau=ratio_tau, difference_tau=difference_tau,
    )  # fmt: skip
    return MetricEvidence(
        ok=True,
        control_value=comparison.control.rate,
        treatment_value=comparison.treatment.rate,
        effect=comparison.difference.estimate,
        ratio=comparison.ratio,
        difference=comparison.difference,
        message=f"{treatment.units} flag-on and {control.units} control units",
    )


def latency_evidence(
    control: VariantSeries, treatment: VariantSeries, request: EvidenceRequest
) -> MetricEvidence:
    latency = compare_latency(control, treatment, comparison_config(request))
    p95_control = percentile(control.final_latency(), P95)
    p95_treatment = percentile(treatment.final_latency(), P95)
    if latency.status != "ok" or not p95_control or not p95_treatment:
        return MetricEvidence(ok=False, message=latency.message)
    seq = latency.sequential
    return MetricEvidence(
        ok=True,
        control_value=p95_control,
        treatment_value=p95_treatment,
        effect=latency.difference or 0.0,
        fixed_significant=latency.significant,
        sequential_reject=bool(seq and seq.reject),
        sequential_p=seq.p_value if seq else None,
    )


def evidence_from_stage(
    units: StageUnits,
    request: EvidenceRequest,
    *,
    weight: int,
    comparable: bool,
    latency: tuple[VariantSeries, VariantSeries] | None = None,
) -> Evidence:
    """Evidence for the decision from the current stage's units (and latency histograms).

    ``weight`` is the stage's flag-on share in the engine's units; ``comparable`` says whether
    both cohorts are served at it (not at 100 %, nor at a segment-only stage, whose cohorts are
    chosen rather than randomized).
    """
    control = units.cohort(request.off_variant)
    treatment = units.cohort(request.on_variant)
    metrics: dict[str, MetricEvidence] = {}
    if comparable:
        keys = {g.evidence_key for g in request.guardrails} | {ERROR_RATE, CONVERSION_RATE}
        for key in sorted(keys - {"latency_p95"}):
            metrics[key] = rate_evidence(
                control.metrics.get(key, RatioSums()),
                treatment.metrics.get(key, RatioSums()),
                request,
                key,
            )
        if latency is not None:
            metrics["latency_p95"] = latency_evidence(latency[0], latency[1], request)
        else:
            metrics["latency_p95"] = MetricEvidence(ok=False, message="no latency data")
    srm_p = None
    if comparable and 0 < weight < BUCKETS and control.units + treatment.units > 0:
        srm_p = sequential_srm_p_value(
            [[control.units, treatment.units]], [BUCKETS - weight, weight]
        )
    seen = units.events
    return Evidence(
        treatment_users=treatment.units,
        control_users=control.units,
        stage_treatment_users=treatment.units,
        stage_control_users=control.units,
        metrics=metrics,
        sample_ratio_mismatch=srm_p is not None and srm_p < SRM_ALPHA,
        sample_ratio_p=srm_p,
        comparable=comparable,
        requests=control.requests + treatment.requests,
        error_events=units.error_events,
        unit_attribute=request.unit_attribute,
        missing_unit_share=units.missing_unit / seen if seen else 0.0,
        both_variants_units=units.both_variants,
        # None when the stage saw no event: the decision counts the silence from its start.
        last_event_age_seconds=units.last_event_age_seconds,
    )


def latency_series(
    environment_id: int, flag_key: str, window: Window, now: datetime, variants: Sequence[str]
) -> list[VariantSeries]:
    """The latency histograms of the window per variant, look by look (one query; the looks an
    earlier check kept are not read again: analytics.look_cache)."""
    totals, latency_looks = totals_with_latency(environment_id, flag_key, window, ["latency"], now)
    no_rows = np.zeros((0, N_BUCKETS), np.int64)
    series = []
    for variant in variants:
        looks = latency_looks.get(variant) or LatencyLooks.of(
            np.zeros((window.looks, N_BUCKETS), np.int64)
        )
        requests = totals.cumulative_events(variant, "latency")
        series.append(VariantSeries(variant, requests, requests, requests, no_rows, looks))
    return series


def gather(
    state: FlagState,
    request: EvidenceRequest,
    stage_started_at: datetime,
    now: datetime,
    *,
    weight: int,
    comparable: bool,
) -> Evidence:
    """Evidence of the current stage, from its start to now. Never raises: a failure becomes
    Evidence.failure, which holds."""
    try:
        window = window_for(stage_started_at, now)
        variants = (request.off_variant, request.on_variant)
        names = [g.custom_name for g in request.guardrails if g.metric == "custom"]
        flag_key = state.flag.key
        units = read_stage_units(
            state.environment_id, flag_key, request.unit_attribute,
            stage_started_at, now, variants, names,
        )  # fmt: skip
        latency = None
        if comparable:
            control, treatment = latency_series(
                state.environment_id, flag_key, window, now, variants
            )
            latency = (control, treatment)
        return evidence_from_stage(
            units, request, weight=weight, comparable=comparable, latency=latency
        )
    except Exception as exc:
        return Evidence(0, 0, 0, 0, failure=f"{type(exc).__name__}: {exc}")
