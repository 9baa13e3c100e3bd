"""From analytics to the decision's Evidence: the comparison of flag-on against control.

``evidence_from_series`` is pure (the simulator's fast path calls it with in-memory series);
``gather`` reads the rollups (two queries, three with a custom guardrail, whatever the volume).

The window runs from the rollout's start, not the stage's: each metric then has one sequential
test over the whole rollout, valid however often it is checked, and the false-positive rate is
shared by the guardrails only (not multiplied by the number of stages). The minimum sample is
counted per stage from the same series. The sample-ratio check runs in the first stage only:
later, users who were in control move to flag-on as the rollout grows, so counts of first
exposures no longer follow the current split.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np

from analytics.models import Rollup
from analytics.selectors import Window, comparison_inputs, configured_split, empty_series
from analytics.stats import ComparisonConfig, VariantSeries, compare
from analytics.stats.compare import MetricComparison, compare_rate
from rollouts.decision import Evidence, GuardrailSpec, MetricEvidence

MAX_LOOKS = 500
MIN_LOOK = timedelta(minutes=5)


@dataclass(frozen=True)
class EvidenceRequest:
    on_variant: str
    off_variant: str
    guardrails: tuple[GuardrailSpec, ...]
    false_positive_rate: float
    design_sample: int
    srm_applies: bool


def comparison_config(request: EvidenceRequest) -> ComparisonConfig:
    # Bonferroni over the metrics tested (two guardrails on one metric share its test): each
    # test gets an equal share of the plan's false-positive rate.
    tests = {g.evidence_key for g in request.guardrails}
    alpha = request.false_positive_rate / max(1, len(tests))
    return ComparisonConfig(alpha=alpha, design_information=float(request.design_sample))


def window_for(started_at: datetime, now: datetime) -> Window:
    """From the rollout's start to now, with at most MAX_LOOKS looks (whole minutes)."""
    start = datetime.fromtimestamp(int(started_at.timestamp()) // 60 * 60, UTC)
    span = max(now - start, timedelta(minutes=1))
    minutes = max(MIN_LOOK, span / MAX_LOOKS).total_seconds() / 60
    return Window(start, now, timedelta(minutes=math.ceil(minutes)))


def _metric(comparison: MetricComparison, value: str) -> MetricEvidence:
    if comparison.status != "ok":
        return MetricEvidence(ok=False, message=comparison.message)
    seq = comparison.sequential
    return MetricEvidence(
        ok=True,
        control_value=comparison.control_value,
        treatment_value=comparison.treatment_value,
        effect=comparison.difference or 0.0,
        fixed_significant=comparison.significant,
        sequential_reject=bool(seq and seq.reject),
        sequential_p=seq.p_value if seq else None,
        message=value,
    )


def _users_before(series: VariantSeries, look: int) -> int:
    return int(series.exposed_users[look - 1]) if look > 0 else 0


def evidence_from_series(
    series: Sequence[VariantSeries],
    request: EvidenceRequest,
    window: Window,
    stage_started_at: datetime,
    weights: dict[str, float] | None,
    custom: dict[str, tuple[VariantSeries, VariantSeries]] | None = None,
) -> Evidence:
    """Evidence for the decision from per-look series (control and flag-on)."""
    by_name = {s.name: s for s in series}
    control = by_name.get(request.off_variant) or empty_series(request.off_variant, window)
    treatment = by_name.get(request.on_variant) or empty_series(request.on_variant, window)
    config = comparison_config(request)
    report = compare(
        [control, treatment],
        request.off_variant,
        weights if request.srm_applies else None,
        config,
    )
    metrics: dict[str, MetricEvidence] = {}
    by_metric = {m.metric: m for m in report.comparisons[0].metrics}
    metrics["error_rate"] = _metric(by_metric["error_rate"], "")
    metrics["conversion_rate"] = _metric(by_metric["conversion_rate"], "")
    latency = by_metric["latency"]
    p95 = {s.name: s.latency_percentiles[1].value for s in report.variants}
    if latency.status == "ok" and p95[request.off_variant] and p95[request.on_variant]:
        metrics["latency_p95"] = MetricEvidence(
            ok=True,
            control_value=p95[request.off_variant],
            treatment_value=p95[request.on_variant],
            effect=latency.difference or 0.0,
            fixed_significant=latency.significant,
            sequential_reject=bool(latency.sequential and latency.sequential.reject),
            sequential_p=latency.sequential.p_value if latency.sequential else None,
        )
    else:
        metrics["latency_p95"] = MetricEvidence(ok=False, message=latency.message)
    for name, (custom_control, custom_treatment) in (custom or {}).items():
        rate = compare_rate("error_rate", custom_control, custom_treatment, config)
        metrics[f"custom:{name}"] = _metric(rate, "")
    stage_look = window.look_of(stage_started_at) if stage_started_at > window.start else 0
    srm = report.sample_ratio
    return Evidence(
        treatment_users=int(treatment.exposed_users[-1]),
        control_users=int(control.exposed_users[-1]),
        stage_treatment_users=int(treatment.exposed_users[-1])
        - _users_before(treatment, stage_look),
        stage_control_users=int(control.exposed_users[-1]) - _users_before(control, stage_look),
        metrics=metrics,
        sample_ratio_mismatch=bool(
            srm and srm.status == "ok" and srm.sequential_p_value < config.srm_alpha
        ),
        sample_ratio_p=srm.sequential_p_value if srm and srm.status == "ok" else None,
    )


def _custom_series(
    environment_id: int, flag_key: str, name: str, window: Window, base: VariantSeries
) -> VariantSeries:
    """Events of a custom metric per look, as 'successes' over the variant's exposed users.

    Custom rollups count events, not distinct users, so each event is counted as one user
    (capped at the exposed users): an approximation that overstates rather than hides a rise.
    """
    events = np.zeros(window.looks, np.int64)
    rows = Rollup.objects.filter(
        environment_id=environment_id,
        flag_key=flag_key,
        variant=base.name,
        metric=f"custom:{name}",
        bucket_start__gte=window.start,
        bucket_start__lt=window.end,
    ).values_list("bucket_start", "events")
    for start, count in rows:
        events[window.look_of(start)] += count
    cumulative = np.minimum(np.cumsum(events), base.exposed_users)
    return VariantSeries(base.name, base.exposed_users, cumulative, cumulative, base.latency)


def gather(
    environment_id: int,
    flag_key: str,
    request: EvidenceRequest,
    started_at: datetime,
    stage_started_at: datetime,
    now: datetime,
) -> Evidence:
    """Evidence from the rollups of the flag since the rollout started. Never raises: a failure
    becomes Evidence.failure, which the decision turns into a hold."""
    try:
        window = window_for(started_at, now)
        split = configured_split(environment_id, flag_key)
        if split is None:
            raise LookupError(f"the flag {flag_key!r} has no state in this environment")
        series = comparison_inputs(environment_id, flag_key, window)
        custom: dict[str, tuple[VariantSeries, VariantSeries]] = {}
        by_name = {s.name: s for s in series}
        for guardrail in request.guardrails:
            if guardrail.metric != "custom":
                continue
            pair = []
            for variant in (request.off_variant, request.on_variant):
                base = by_name.get(variant) or empty_series(variant, window)
                pair.append(
                    _custom_series(environment_id, flag_key, guardrail.custom_name, window, base)
                )
            custom[guardrail.custom_name] = (pair[0], pair[1])
        return evidence_from_series(
            series, request, window, stage_started_at, split.weights, custom
        )
    except Exception as exc:
        return Evidence(0, 0, 0, 0, failure=f"{type(exc).__name__}: {exc}")
