"""Per-variant comparison of a flag's cohorts, built from rollups (never from raw events).

Inputs are cumulative series: element k of each array is the total from the window start up to
look k (one look per rollup bucket, for instance every 5 minutes). The last look is the window
total used by the fixed-horizon tests; the whole series feeds the sequential tests, so checking
a rollout every few minutes does not inflate its false-alarm rate.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from analytics.stats import histogram as hist
from analytics.stats.distributions import chi_square, normal_ppf
from analytics.stats.latency import mann_whitney_from_histograms
from analytics.stats.proportions import pooled_z, two_proportion_test, wilson_interval
from analytics.stats.sequential import (
    DEFAULT_DESIGN_INFORMATION,
    SequentialResult,
    effective_information,
    sequential_srm_p_value,
    sequential_test,
)

PERCENTILES = (0.50, 0.95, 0.99)
RATE_METRICS = ("error_rate", "conversion_rate")


@dataclass(frozen=True)
class ComparisonConfig:
    alpha: float = 0.05
    confidence: float = 0.95
    min_users: int = 100  # per variant, before any rate is compared
    min_events: int = 5  # pooled events of a rate metric per variant pair (normal approximation)
    min_latency_samples: int = 100
    srm_alpha: float = 0.001
    design_information: float = DEFAULT_DESIGN_INFORMATION


@dataclass(frozen=True)
class VariantSeries:
    """Cumulative counts per look for one variant; arrays share their first dimension."""

    name: str
    exposed_users: npt.NDArray[np.int64]
    error_users: npt.NDArray[np.int64]
    conversion_users: npt.NDArray[np.int64]
    latency: npt.NDArray[np.int64]  # shape (looks, hist.N_BUCKETS)
    # Given instead of reading ``latency`` (which may then have no rows): a rollout check's
    # looks, most of them kept from its earlier passes (analytics.look_cache).
    latency_looks: hist.LatencyLooks | None = None

    @classmethod
    def single_look(
        cls,
        name: str,
        exposed_users: int,
        error_users: int = 0,
        conversion_users: int = 0,
        latency: npt.ArrayLike | None = None,
    ) -> VariantSeries:
        latency_counts = hist.empty_histogram() if latency is None else hist.as_histogram(latency)
        return cls(
            name,
            np.array([exposed_users], dtype=np.int64),
            np.array([error_users], dtype=np.int64),
            np.array([conversion_users], dtype=np.int64),
            latency_counts[np.newaxis, :],
        )

    def successes(self, metric: str) -> npt.NDArray[np.int64]:
        return self.error_users if metric == "error_rate" else self.conversion_users

    def latency_summary(self) -> hist.LatencyLooks:
        if self.latency_looks is not None:
            return self.latency_looks
        return hist.LatencyLooks.of(self.latency)

    def final_latency(self) -> npt.NDArray[np.int64]:
        """The latency histogram of the whole window (the last look's)."""
        if self.latency_looks is not None:
            return self.latency_looks.last
        last: npt.NDArray[np.int64] = self.latency[-1]
        return last


@dataclass(frozen=True)
class RateSummary:
    users: int
    rate: float | None
    ci_lower: float | None
    ci_upper: float | None


@dataclass(frozen=True)
class VariantSummary:
    name: str
    exposed_users: int
    error_rate: RateSummary
    conversion_rate: RateSummary
    latency_samples: int
    latency_percentiles: list[hist.PercentileEstimate]


@dataclass(frozen=True)
class MetricComparison:
    metric: str
    status: str  # "ok" or "insufficient_data"
    message: str = ""
    test: str = ""
    control_value: float | None = None
    treatment_value: float | None = None
    difference: float | None = None  # absolute for rates, relative (ratio - 1) for latency
    ci_lower: float | None = None
    ci_upper: float | None = None
    relative_change: float | None = None
    p_value: float | None = None
    significant: bool = False  # fixed-horizon verdict: valid for one look only
    sequential: SequentialResult | None = None  # always-valid verdict: use for repeated checks
    details: dict[str, float | None] = field(default_factory=dict)


@dataclass(frozen=True)
class VariantComparison:
    variant: str
    control: str
    metrics: list[MetricComparison]


@dataclass(frozen=True)
class SampleRatioCheck:
    observed: dict[str, int]
    expected: dict[str, float]
    chi2: float
    p_value: float
    sequential_p_value: float
    mismatch: bool
    status: str  # "ok" or "insufficient_data"


@dataclass(frozen=True)
class ComparisonReport:
    control: str
    variants: list[VariantSummary]
    comparisons: list[VariantComparison]
    sample_ratio: SampleRatioCheck | None


def _rate_summary(successes: int, users: int, confidence: float) -> RateSummary:
    if users == 0:
        return RateSummary(0, None, None, None)
    lower, upper = wilson_interval(successes, users, confidence)
    return RateSummary(successes, successes / users, float(lower), float(upper))


def summarise(series: VariantSeries, config: ComparisonConfig) -> VariantSummary:
    users = int(series.exposed_users[-1])
    latency = series.final_latency()
    return VariantSummary(
        name=series.name,
        exposed_users=users,
        error_rate=_rate_summary(int(series.error_users[-1]), users, config.confidence),
        conversion_rate=_rate_summary(int(series.conversion_users[-1]), users, config.confidence),
        latency_samples=int(latency.sum()),
        latency_percentiles=hist.percentiles_with_ci(latency, PERCENTILES, config.confidence),
    )


def compare_rate(
    metric: str, control: VariantSeries, treatment: VariantSeries, config: ComparisonConfig
) -> MetricComparison:
    n_c = int(control.exposed_users[-1])
    n_t = int(treatment.exposed_users[-1])
    x_c = min(int(control.successes(metric)[-1]), n_c)
    x_t = min(int(treatment.successes(metric)[-1]), n_t)
    if min(n_c, n_t) < config.min_users:
        return MetricComparison(
            metric,
            "insufficient_data",
            f"not enough data: {min(n_c, n_t)} exposed users in the smaller arm, "
            f"{config.min_users} needed",
        )
    if x_c + x_t < config.min_events or (n_c - x_c) + (n_t - x_t) < config.min_events:
        return MetricComparison(
            metric,
            "insufficient_data",
            f"not enough data: {x_c + x_t} events in both arms, {config.min_events} needed",
        )
    fixed = two_proportion_test(x_c, n_c, x_t, n_t, config.confidence)
    looks_z = pooled_z(
        control.successes(metric), control.exposed_users,
        treatment.successes(metric), treatment.exposed_users,
    )  # fmt: skip
    looks_info = effective_information(control.exposed_users, treatment.exposed_users)
    unpooled_se = math.sqrt(
        fixed.control_rate * (1 - fixed.control_rate) / n_c
        + fixed.treatment_rate * (1 - fixed.treatment_rate) / n_t
    )
    sequential = sequential_test(
        looks_z, looks_info, fixed.difference, unpooled_se, config.alpha, config.design_information
    )
    return MetricComparison(
        metric,
        "ok",
        test="two-proportion z-test (pooled), Newcombe interval; mixture SPRT",
        control_value=fixed.control_rate,
        treatment_value=fixed.treatment_rate,
        difference=fixed.difference,
        ci_lower=fixed.ci_lower,
        ci_upper=fixed.ci_upper,
        relative_change=fixed.relative_change,
        p_value=fixed.p_value,
        significant=fixed.p_value < config.alpha,
        sequential=sequential,
    )


def log_latency_z_per_look(
    control: hist.LatencyLooks, treatment: hist.LatencyLooks
) -> npt.NDArray[np.float64]:
    """Welch's z on mean log-latency at every look, from the looks' log moments of the
    cumulative histograms: zero where an arm has fewer than two samples or the standard error
    is zero. Vectorised over the looks (a day of 5-minute looks is 288 of them, at every
    check)."""
    n_c, mean_c, var_c = control.counts, control.log_means, control.log_variances
    n_t, mean_t, var_t = treatment.counts, treatment.log_means, treatment.log_variances
    valid = (n_c >= 2) & (n_t >= 2)
    with np.errstate(divide="ignore", invalid="ignore"):
        se = np.sqrt(var_c / n_c + var_t / n_t)
        z = (mean_t - mean_c) / se
    return np.where(valid & (se > 0), z, 0.0)


def compare_latency(
    control: VariantSeries, treatment: VariantSeries, config: ComparisonConfig
) -> MetricComparison:
    looks_c, looks_t = control.latency_summary(), treatment.latency_summary()
    hist_c, hist_t = looks_c.last, looks_t.last
    n_c = int(hist_c.sum())
    n_t = int(hist_t.sum())
    if min(n_c, n_t) < config.min_latency_samples:
        return MetricComparison(
            "latency",
            "insufficient_data",
            f"not enough data: {min(n_c, n_t)} latency samples in the smaller arm, "
            f"{config.min_latency_samples} needed",
        )
    rank = mann_whitney_from_histograms(hist_c, hist_t)
    _, mean_c, var_c = hist.log_moments(hist_c)
    _, mean_t, var_t = hist.log_moments(hist_t)
    log_diff = mean_t - mean_c
    log_se = math.sqrt(var_c / n_c + var_t / n_t)
    z_crit = normal_ppf(0.5 + config.confidence / 2)
    looks_z = log_latency_z_per_look(looks_c, looks_t)
    looks_info = effective_information(looks_c.counts, looks_t.counts)
    seq_log = sequential_test(
        looks_z, looks_info, log_diff, log_se, config.alpha, config.design_information
    )
    # Reported on the ratio scale: exp of the difference of mean log-latency, minus one.
    sequential = SequentialResult(
        seq_log.p_value,
        seq_log.reject,
        math.expm1(log_diff),
        math.expm1(seq_log.cs_lower) if math.isfinite(seq_log.cs_lower) else -1.0,
        math.expm1(seq_log.cs_upper) if math.isfinite(seq_log.cs_upper) else math.inf,
    )
    details: dict[str, float | None] = {"prob_treatment_slower": rank.prob_slower}
    for q in PERCENTILES:
        pc = hist.percentile(hist_c, q)
        pt = hist.percentile(hist_t, q)
        details[f"p{round(q * 100)}_ratio"] = pt / pc if pc and pt is not None else None
    return MetricComparison(
        "latency",
        "ok",
        test="Mann-Whitney U on histogram buckets (tie-corrected); mixture SPRT on log-latency",
        control_value=math.exp(mean_c),
        treatment_value=math.exp(mean_t),
        difference=math.expm1(log_diff),
        ci_lower=math.expm1(log_diff - z_crit * log_se),
        ci_upper=math.expm1(log_diff + z_crit * log_se),
        relative_change=math.expm1(log_diff),
        p_value=rank.p_value,
        significant=rank.p_value < config.alpha,
        sequential=sequential,
        details=details,
    )


def sample_ratio_check(
    series: Sequence[VariantSeries], weights: Mapping[str, float], config: ComparisonConfig
) -> SampleRatioCheck:
    """Chi-square goodness of fit of exposed users against the configured split."""
    names = [s.name for s in series if weights.get(s.name, 0) > 0]
    observed = np.array([int(s.exposed_users[-1]) for s in series if s.name in names], dtype=float)
    w = np.array([weights[name] for name in names], dtype=float)
    total = observed.sum()
    expected = total * w / w.sum() if total > 0 else np.zeros_like(w)
    if len(names) < 2 or float(expected.min(initial=np.inf)) < 5.0:
        return SampleRatioCheck(
            {n: int(o) for n, o in zip(names, observed, strict=True)},
            {n: float(e) for n, e in zip(names, expected, strict=True)},
            0.0, 1.0, 1.0, False, "insufficient_data",
        )  # fmt: skip
    chi2, p_value = chi_square(observed, expected)
    per_look = np.stack([s.exposed_users for s in series if s.name in names], axis=-1)
    seq_p = sequential_srm_p_value(per_look, w)
    return SampleRatioCheck(
        {n: int(o) for n, o in zip(names, observed, strict=True)},
        {n: float(e) for n, e in zip(names, expected, strict=True)},
        float(chi2),
        float(p_value),
        seq_p,
        bool(p_value < config.srm_alpha),
        "ok",
    )


def compare(
    series: Sequence[VariantSeries],
    control: str,
    weights: Mapping[str, float] | None = None,
    config: ComparisonConfig | None = None,
) -> ComparisonReport:
    """Compare every variant with the control variant; weights enable the sample-ratio check."""
    cfg = config or ComparisonConfig()
    by_name = {s.name: s for s in series}
    if control not in by_name:
        raise ValueError(f"control variant {control!r} has no data")
    base = by_name[control]
    comparisons = [
        VariantComparison(
            s.name,
            control,
            [compare_rate(m, base, s, cfg) for m in RATE_METRICS] + [compare_latency(base, s, cfg)],
        )
        for s in series
        if s.name != control
    ]
    srm = sample_ratio_check(series, weights, cfg) if weights else None
    return ComparisonReport(control, [summarise(s, cfg) for s in series], comparisons, srm)
