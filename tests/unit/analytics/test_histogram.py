"""Latency histograms: bucket layout, percentiles against known data, percentile intervals."""

import numpy as np
import pytest
from scipy import stats

from analytics.stats import histogram as hist


def test_edges_are_log_spaced_and_cover_the_range():
    edges = hist.BUCKET_EDGES_MS
    assert edges[0] == 0.0
    assert edges[1] == pytest.approx(hist.LOWEST_EDGE_MS)
    assert edges[-1] >= hist.HIGHEST_EDGE_MS
    ratios = edges[2:] / edges[1:-1]
    assert np.allclose(ratios, hist.GROWTH)


def test_values_land_in_the_bucket_whose_edges_enclose_them():
    values = np.array([0.0, 0.05, 0.1, 1.0, 37.5, 250.0, 1e7, -3.0])
    idx = hist.bucket_index(values)
    for value, i in zip(np.maximum(values, 0), idx, strict=True):
        assert hist.BUCKET_EDGES_MS[i] <= value
        if i + 1 < hist.N_BUCKETS:
            assert value < hist.BUCKET_EDGES_MS[i + 1]
    assert idx[-2] == hist.N_BUCKETS - 1  # overflow


def test_histograms_merge_by_addition():
    rng = np.random.default_rng(1)
    a = rng.lognormal(4, 1, 1000)
    b = rng.lognormal(5, 0.5, 700)
    merged = hist.histogram_of(a) + hist.histogram_of(b)
    assert np.array_equal(merged, hist.histogram_of(np.concatenate([a, b])))


@pytest.mark.parametrize("q", [0.5, 0.95, 0.99])
def test_percentiles_match_known_data_within_the_error_bound(q):
    rng = np.random.default_rng(7)
    data = rng.lognormal(mean=np.log(80), sigma=0.9, size=20_000)
    exact = np.percentile(data, q * 100, method="inverted_cdf")
    estimate = hist.percentile(hist.histogram_of(data), q)
    assert estimate is not None
    assert abs(estimate / exact - 1) <= hist.RELATIVE_ERROR_BOUND + 1e-12


def test_percentiles_of_a_hand_built_sample():
    # 100 requests at 10 ms and one at 1000 ms: p50 is 10 ms, p99 too, max bucket is 1 s.
    data = [10.0] * 100 + [1000.0]
    h = hist.histogram_of(data)
    assert hist.percentile(h, 0.5) == pytest.approx(10.0, rel=hist.RELATIVE_ERROR_BOUND)
    assert hist.percentile(h, 0.99) == pytest.approx(10.0, rel=hist.RELATIVE_ERROR_BOUND)
    assert hist.percentile(h, 0.999) == pytest.approx(1000.0, rel=hist.RELATIVE_ERROR_BOUND)
    assert hist.percentile(hist.empty_histogram(), 0.5) is None


def test_percentile_interval_covers_the_true_quantile_at_its_level():
    rng = np.random.default_rng(11)
    dist = stats.lognorm(s=0.8, scale=120.0)
    true_p95 = dist.ppf(0.95)
    runs = 400
    covered = 0
    for _ in range(runs):
        est = hist.percentile_with_ci(hist.histogram_of(dist.rvs(500, random_state=rng)), 0.95)
        assert est.lower is not None
        assert est.upper is not None
        covered += est.lower <= true_p95 <= est.upper
    # Binning only widens the interval, so coverage is at least nominal (3 SE of slack).
    assert covered / runs >= 0.95 - 3 * np.sqrt(0.95 * 0.05 / runs)


def test_percentile_interval_is_open_when_the_sample_is_too_small():
    est = hist.percentile_with_ci(hist.histogram_of([5.0] * 20), 0.99)
    assert est.value is not None
    assert est.upper is None


def test_stored_histograms_are_validated():
    with pytest.raises(ValueError, match="buckets"):
        hist.as_histogram([1, 2, 3])
    with pytest.raises(ValueError, match="negative"):
        hist.as_histogram([-1] + [0] * (hist.N_BUCKETS - 1))
