"""From analytics to the decision's Evidence: the comparison of flag-on against control.

``evidence_from_series`` is pure (the simulator's fast path calls it with in-memory series);
``gather`` reads the rollups (one query whatever the event volume).

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

from analytics.look_cache import totals_with_latency
from analytics.selectors import COMPARED_METRICS, Window, empty_series, split_of
from analytics.stats import ComparisonConfig, VariantSeries
from analytics.stats.compare import (
    RATE_METRICS,
    MetricComparison,
    compare_latency,
    compare_rate,
    sample_ratio_check,
)
from analytics.stats.histogram import N_BUCKETS, LatencyLooks, percentile
from flags.models import FlagState
from rollouts.decision import Evidence, GuardrailSpec, MetricEvidence

MAX_LOOKS = 500
P95 = 0.95
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


def _pick(series: Sequence[VariantSeries], name: str, window: Window) -> VariantSeries:
    return next((s for s in series if s.name == name), None) or empty_series(name, window)


def evidence_from_series(
    users: Sequence[VariantSeries],
    requests: Sequence[VariantSeries],
    request: EvidenceRequest,
    window: Window,
    stage_started_at: datetime,
    weights: dict[str, float] | None,
    custom: dict[str, tuple[VariantSeries, VariantSeries]] | None = None,
) -> Evidence:
    """Evidence for the decision from per-look series of control and flag-on.

    ``users`` (distinct users, as the analytics core counts them) give the sample sizes and the
    sample-ratio check. ``requests`` give the tests: requests (latency events), error and
    conversion events per request. Per-request rates, because a rollout moves users from
    control to flag-on as it grows: a share of users "with at least one error since first
    exposure" depends on how long each cohort has been exposed, and the cohorts' tenures
    differ after every stage. (Requests of one user are not independent: see docs/rollouts.md.)
    """
    control = _pick(requests, request.off_variant, window)
    treatment = _pick(requests, request.on_variant, window)
    config = comparison_config(request)
    # The comparisons of analytics.stats.compare, without the summaries (rates' and
    # percentiles' intervals) that a decision does not read.
    metrics: dict[str, MetricEvidence] = {}
    for metric in RATE_METRICS:
        metrics[metric] = _metric(compare_rate(metric, control, treatment, config), "")
    latency = compare_latency(control, treatment, config)
    p95_control = percentile(control.final_latency(), P95)
    p95_treatment = percentile(treatment.final_latency(), P95)
    if latency.status == "ok" and p95_control and p95_treatment:
        metrics["latency_p95"] = MetricEvidence(
            ok=True,
            control_value=p95_control,
            treatment_value=p95_treatment,
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
    user_control = _pick(users, request.off_variant, window)
    user_treatment = _pick(users, request.on_variant, window)
    srm = None
    if request.srm_applies and weights:
        srm = sample_ratio_check([user_control, user_treatment], weights, config)
    stage_look = window.look_of(stage_started_at) if stage_started_at > window.start else 0
    valid_srm = srm is not None and srm.status == "ok"
    return Evidence(
        treatment_users=int(user_treatment.exposed_users[-1]),
        control_users=int(user_control.exposed_users[-1]),
        stage_treatment_users=int(user_treatment.exposed_users[-1])
        - _users_before(user_treatment, stage_look),
        stage_control_users=int(user_control.exposed_users[-1])
        - _users_before(user_control, stage_look),
        metrics=metrics,
        sample_ratio_mismatch=bool(
            valid_srm and srm is not None and srm.sequential_p_value < config.srm_alpha
        ),
        sample_ratio_p=srm.sequential_p_value if valid_srm and srm is not None else None,
    )


def rollout_series(
    environment_id: int,
    flag_key: str,
    window: Window,
    now: datetime,
    custom_names: Sequence[str] = (),
) -> tuple[list[VariantSeries], list[VariantSeries], dict[str, list[VariantSeries]]]:
    """One query over the flag's rollups in the window (the latency histograms only of the
    looks that the rollout's earlier checks did not keep: analytics.look_cache): per variant,
    the user series, the request series and, per custom metric, its events per request."""
    wanted = [*COMPARED_METRICS, *(f"custom:{n}" for n in custom_names)]
    totals, latency_looks = totals_with_latency(environment_id, flag_key, window, wanted, now)
    no_rows = np.zeros((0, N_BUCKETS), np.int64)  # the looks are in ``latency_looks``
    user_series, request_series = [], []
    custom: dict[str, list[VariantSeries]] = {n: [] for n in custom_names}
    for variant in totals.variants:
        looks = latency_looks.get(variant) or LatencyLooks.of(
            np.zeros((window.looks, N_BUCKETS), np.int64)
        )
        users = totals.cumulative_users
        user_series.append(
            VariantSeries(
                variant, users(variant, "exposure"), users(variant, "error"),
                users(variant, "conversion"), no_rows, looks,
            )
        )  # fmt: skip
        events = totals.cumulative_events
        requests = events(variant, "latency")
        request_series.append(
            VariantSeries(
                variant, requests,
                np.minimum(events(variant, "error"), requests),
                np.minimum(events(variant, "conversion"), requests), no_rows, looks,
            )
        )  # fmt: skip
        for name in custom_names:
            got = np.minimum(events(variant, f"custom:{name}"), requests)
            custom[name].append(VariantSeries(variant, requests, got, got, no_rows, looks))
    return user_series, request_series, custom


def gather(
    state: FlagState,
    request: EvidenceRequest,
    started_at: datetime,
    stage_started_at: datetime,
    now: datetime,
) -> Evidence:
    """Evidence from the rollups of the flag since the rollout started (one query, whatever
    the event volume; the split comes from ``state``, which the caller has read with its flag).
    Never raises: a failure becomes Evidence.failure, which holds."""
    try:
        window = window_for(started_at, now)
        split = split_of(state)
        flag_key = state.flag.key
        names = [g.custom_name for g in request.guardrails if g.metric == "custom"]
        users, requests, custom_series = rollout_series(
            state.environment_id, flag_key, window, now, names
        )
        custom = {
            name: (
                _pick(series, request.off_variant, window),
                _pick(series, request.on_variant, window),
            )
            for name, series in custom_series.items()
        }
        return evidence_from_series(
            users, requests, request, window, stage_started_at, split.weights, custom
        )
    except Exception as exc:
        return Evidence(0, 0, 0, 0, failure=f"{type(exc).__name__}: {exc}")
