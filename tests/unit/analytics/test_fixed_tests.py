"""Fixed-horizon tests: two-proportion test, rank test on histograms, sample-ratio mismatch."""

import numpy as np
import pytest
from scipy import stats

from analytics.stats import ComparisonConfig, VariantSeries, compare
from analytics.stats import histogram as hist
from analytics.stats.latency import mann_whitney_from_histograms
from analytics.stats.proportions import pooled_z, two_proportion_test, wilson_interval

ALPHA = 0.05


def mc_bound(p: float, runs: int) -> float:
    """p plus three standard errors of a Monte Carlo estimate of a rate p over runs."""
    return float(p + 3 * np.sqrt(p * (1 - p) / runs))


def test_two_proportion_test_agrees_with_a_chi_square_contingency_test():
    result = two_proportion_test(40, 2000, 70, 2000)
    chi2, p, _, _ = stats.chi2_contingency([[40, 1960], [70, 1930]], correction=False)
    assert result.p_value == pytest.approx(p)
    assert result.z**2 == pytest.approx(chi2)
    assert result.ci_lower < result.difference < result.ci_upper


def test_wilson_interval_stays_inside_zero_one():
    lower, upper = wilson_interval([0, 5, 100], [100, 100, 100])
    assert lower[0] == pytest.approx(0.0, abs=1e-12)
    assert upper[2] == pytest.approx(1.0)
    assert (lower <= upper).all()


def test_a_planted_doubling_of_the_error_rate_is_found():
    rng = np.random.default_rng(2024)
    runs, users = 400, 5000
    control = rng.binomial(users, 0.02, runs)
    treated = rng.binomial(users, 0.04, runs)
    z = pooled_z(control, users, treated, users)
    p = 2 * stats.norm.sf(np.abs(z))
    power = np.mean((p < ALPHA) & (z > 0))
    assert power >= 0.95
    one = compare(
        [
            VariantSeries.single_look("off", users, int(control[0])),
            VariantSeries.single_look("on", users, int(treated[0])),
        ],
        control="off",
    )
    error = one.comparisons[0].metrics[0]
    assert error.metric == "error_rate"
    assert error.significant
    assert error.difference is not None
    assert error.difference > 0


def test_a_a_error_rates_show_the_stated_false_positive_rate():
    rng = np.random.default_rng(99)
    runs, users = 4000, 5000
    a = rng.binomial(users, 0.02, runs)
    b = rng.binomial(users, 0.02, runs)
    p = 2 * stats.norm.sf(np.abs(pooled_z(a, users, b, users)))
    rate = np.mean(p < ALPHA)
    se = np.sqrt(ALPHA * (1 - ALPHA) / runs)
    assert abs(rate - ALPHA) <= 3 * se


def test_rank_test_on_histograms_equals_scipy_on_bucketed_data():
    rng = np.random.default_rng(5)
    a = rng.lognormal(4.0, 0.8, 3000)
    b = rng.lognormal(4.05, 0.8, 2500)
    ours = mann_whitney_from_histograms(hist.histogram_of(a), hist.histogram_of(b))
    ref = stats.mannwhitneyu(
        hist.bucket_index(b), hist.bucket_index(a), method="asymptotic", use_continuity=False
    )
    assert ours.u == pytest.approx(ref.statistic)
    assert ours.p_value == pytest.approx(ref.pvalue)


def test_latency_rank_test_finds_a_slowdown_and_holds_its_level_on_a_a():
    rng = np.random.default_rng(17)
    runs, n = 500, 1500
    false_alarms = 0
    detections = 0
    for _ in range(runs):
        base = hist.histogram_of(rng.lognormal(4.0, 1.0, n))
        same = hist.histogram_of(rng.lognormal(4.0, 1.0, n))
        slower = hist.histogram_of(rng.lognormal(4.0, 1.0, n) * 1.2)
        false_alarms += mann_whitney_from_histograms(base, same).p_value < ALPHA
        detections += mann_whitney_from_histograms(base, slower).p_value < ALPHA
    assert false_alarms / runs <= mc_bound(ALPHA, runs)
    assert detections / runs >= 0.9


def test_a_55_45_split_on_a_declared_50_50_flag_is_a_sample_ratio_mismatch():
    series = [VariantSeries.single_look("off", 5500), VariantSeries.single_look("on", 4500)]
    report = compare(series, control="off", weights={"off": 50, "on": 50})
    assert report.sample_ratio is not None
    assert report.sample_ratio.mismatch
    assert report.sample_ratio.p_value < 1e-6
    assert report.sample_ratio.sequential_p_value < 0.001


def test_a_matching_split_is_not_a_mismatch():
    series = [VariantSeries.single_look("off", 5030), VariantSeries.single_look("on", 4970)]
    report = compare(series, control="off", weights={"off": 50, "on": 50})
    assert report.sample_ratio is not None
    assert not report.sample_ratio.mismatch


def test_too_little_data_is_reported_as_such_not_guessed():
    series = [
        VariantSeries.single_look("off", 40, 1, latency=hist.histogram_of([50.0] * 40)),
        VariantSeries.single_look("on", 38, 5, latency=hist.histogram_of([90.0] * 38)),
    ]
    report = compare(series, control="off", config=ComparisonConfig(min_users=100))
    for metric in report.comparisons[0].metrics:
        assert metric.status == "insufficient_data"
        assert "not enough data" in metric.message
        assert metric.p_value is None
        assert not metric.significant


def test_zero_events_in_both_arms_is_not_enough_data():
    series = [VariantSeries.single_look("off", 1000), VariantSeries.single_look("on", 1000)]
    error = compare(series, control="off").comparisons[0].metrics[0]
    assert error.status == "insufficient_data"


def test_full_report_has_summaries_with_intervals():
    rng = np.random.default_rng(3)
    series = [
        VariantSeries.single_look(
            "off", 3000, 60, 300, hist.histogram_of(rng.lognormal(4, 1, 3000))
        ),
        VariantSeries.single_look(
            "on", 3000, 65, 330, hist.histogram_of(rng.lognormal(4, 1, 3000))
        ),
    ]
    report = compare(series, control="off", weights={"off": 1, "on": 1})
    on = report.variants[1]
    assert on.exposed_users == 3000
    rate = on.error_rate
    assert rate.ci_lower is not None
    assert rate.rate is not None
    assert rate.ci_upper is not None
    assert rate.ci_lower < rate.rate < rate.ci_upper
    assert [p.q for p in on.latency_percentiles] == [0.5, 0.95, 0.99]
    for p in on.latency_percentiles:
        assert p.lower is not None
        assert p.value is not None
        assert p.upper is not None
        assert p.lower <= p.value <= p.upper
    metrics = {m.metric: m for m in report.comparisons[0].metrics}
    assert set(metrics) == {"error_rate", "conversion_rate", "latency"}
    assert metrics["latency"].details["p95_ratio"] is not None
    assert metrics["latency"].sequential is not None


def test_unknown_control_is_an_error():
    with pytest.raises(ValueError, match="control"):
        compare([VariantSeries.single_look("on", 10)], control="off")
