"""The check's evidence calls the metric comparisons directly; it must equal what it read from
the full ``analytics.stats.compare`` report before (the reference below), on generated series."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from analytics.selectors import Window
from analytics.stats import VariantSeries, compare
from analytics.stats.histogram import N_BUCKETS
from rollouts.decision import GuardrailSpec, MetricEvidence
from rollouts.evidence import EvidenceRequest, _metric, comparison_config, evidence_from_series

START = datetime(2026, 12, 1, tzinfo=UTC)
REQUEST = EvidenceRequest(
    "on", "off", (GuardrailSpec("error_rate", "relative", 1.5, 2.0, True, ""),), 0.05, 2000, True
)


def reference_metrics(
    control: VariantSeries, treatment: VariantSeries
) -> dict[str, MetricEvidence]:
    report = compare([control, treatment], "off", None, comparison_config(REQUEST))
    by_metric = {m.metric: m for m in report.comparisons[0].metrics}
    metrics = {rate: _metric(by_metric[rate], "") for rate in ("error_rate", "conversion_rate")}
    latency = by_metric["latency"]
    p95 = {s.name: s.latency_percentiles[1].value for s in report.variants}
    if latency.status == "ok" and p95["off"] and p95["on"]:
        metrics["latency_p95"] = MetricEvidence(
            ok=True, control_value=p95["off"], treatment_value=p95["on"],
            effect=latency.difference or 0.0, fixed_significant=latency.significant,
            sequential_reject=bool(latency.sequential and latency.sequential.reject),
            sequential_p=latency.sequential.p_value if latency.sequential else None,
        )  # fmt: skip
    else:
        metrics["latency_p95"] = MetricEvidence(ok=False, message=latency.message)
    return metrics


@st.composite
def arm(draw: st.DrawFn, name: str, looks: int) -> VariantSeries:
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    requests = rng.integers(0, draw(st.sampled_from([3, 60, 2_000])), looks)
    rate = draw(st.floats(0.0, 0.3))
    errors = rng.binomial(requests, rate)
    conversions = rng.binomial(requests, 0.05)
    latency = np.zeros((looks, N_BUCKETS), np.int64)
    centre = draw(st.integers(40, 120))
    for look, n in enumerate(requests):
        buckets = np.clip(rng.normal(centre, 6, n).astype(int), 0, N_BUCKETS - 1)
        latency[look] = np.bincount(buckets, minlength=N_BUCKETS)
    return VariantSeries(
        name, np.cumsum(requests), np.cumsum(errors), np.cumsum(conversions),
        np.cumsum(latency, axis=0),
    )  # fmt: skip


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 40).flatmap(lambda n: st.tuples(st.just(n), arm("off", n), arm("on", n))))
def test_evidence_metrics_equal_those_of_the_full_report(
    case: tuple[int, VariantSeries, VariantSeries],
) -> None:
    looks, control, treatment = case
    window = Window(START, START + timedelta(minutes=5 * looks), timedelta(minutes=5))
    evidence = evidence_from_series(
        [control, treatment], [control, treatment], REQUEST, window, START, {"on": 5, "off": 95}
    )
    assert evidence.metrics == reference_metrics(control, treatment)
