"""The vectorised statistics of a check give exactly what the one-look-at-a-time code gave.

A rollout check computes the latency z of each of up to 500 looks and three percentiles with
intervals per arm; these were loops of scalar calls. The references below are those loops,
kept here verbatim in behaviour, and the vectorised code must match them bit for bit on
generated histograms (sparse, dense, empty and single-sample rows included). The normal and
chi-square functions called without scipy.stats' argument handling must equal scipy.stats.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from scipy import stats

from analytics.stats import histogram as hist
from analytics.stats.compare import PERCENTILES, log_latency_z_per_look
from analytics.stats.distributions import chi_square, normal_ppf, normal_sf

IntArray = npt.NDArray[np.int64]


def looks(cumulative: IntArray) -> hist.LatencyLooks:
    return hist.LatencyLooks.of(cumulative)


def reference_z(control: IntArray, treatment: IntArray) -> float:
    n_c, mean_c, var_c = hist.log_moments(control)
    n_t, mean_t, var_t = hist.log_moments(treatment)
    if n_c < 2 or n_t < 2:
        return 0.0
    se = math.sqrt(var_c / n_c + var_t / n_t)
    return (mean_t - mean_c) / se if se > 0 else 0.0


@st.composite
def cumulative_histograms(draw: st.DrawFn, looks: int) -> IntArray:
    """Cumulative (looks, N_BUCKETS) histograms concentrated on a few buckets, as latency is,
    with zero-sample and tiny looks likely at the start."""
    low = draw(st.integers(0, hist.N_BUCKETS - 1))
    width = draw(st.integers(1, 40))
    high = min(hist.N_BUCKETS, low + width)
    scale = draw(st.sampled_from([1, 3, 1_000, 10**9]))
    per_look = draw(
        hnp.arrays(
            np.int64, (looks, high - low), elements=st.integers(0, 5).map(lambda v: v * scale)
        )
    )
    sparse = draw(hnp.arrays(np.bool_, looks))
    per_look[sparse] = 0
    matrix = np.zeros((looks, hist.N_BUCKETS), np.int64)
    matrix[:, low:high] = per_look
    return np.cumsum(matrix, axis=0)


@settings(max_examples=150, deadline=None)
@given(
    st.integers(1, 30).flatmap(
        lambda n: st.tuples(cumulative_histograms(n), cumulative_histograms(n))
    )
)
def test_latency_z_per_look_equals_the_per_look_loop(pair: tuple[IntArray, IntArray]) -> None:
    control, treatment = pair
    expected = np.array([reference_z(c, t) for c, t in zip(control, treatment, strict=True)])
    got = log_latency_z_per_look(looks(control), looks(treatment))
    assert got.dtype == np.float64
    np.testing.assert_array_equal(got, expected)


def test_latency_z_of_a_planted_slowdown_is_positive_and_of_equal_arms_zero() -> None:
    rng = np.random.default_rng(3)
    base = hist.histogram_of(100 * np.exp(rng.normal(0, 0.5, 2_000)))
    slow = hist.histogram_of(130 * np.exp(rng.normal(0, 0.5, 2_000)))
    control = np.cumsum(np.stack([base] * 4), axis=0)
    treatment = np.cumsum(np.stack([slow] * 4), axis=0)
    z = log_latency_z_per_look(looks(control), looks(treatment))
    assert (z > 5).all()
    assert z[-1] > z[0]
    assert (log_latency_z_per_look(looks(control), looks(control)) == 0).all()


@settings(max_examples=150, deadline=None)
@given(cumulative_histograms(1), st.sampled_from([0.8, 0.9, 0.95, 0.99]))
def test_percentiles_with_ci_equal_one_call_per_percentile(
    matrix: IntArray, confidence: float
) -> None:
    histogram = matrix[0]
    got = hist.percentiles_with_ci(histogram, PERCENTILES, confidence)
    assert got == [hist.percentile_with_ci(histogram, q, confidence) for q in PERCENTILES]


finite = st.floats(-40, 40, allow_nan=False)


@settings(max_examples=300, deadline=None)
@given(finite, st.floats(1e-12, 1 - 1e-12))
def test_normal_functions_are_scipy_stats_own(x: float, q: float) -> None:
    assert normal_sf(x) == float(stats.norm.sf(x))
    assert normal_ppf(q) == float(stats.norm.ppf(q))


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.integers(0, 10**7), min_size=2, max_size=5),
    st.lists(st.floats(0.01, 100), min_size=5, max_size=5),
)
def test_chi_square_is_scipy_chisquare(counts: list[int], raw_weights: list[float]) -> None:
    observed = np.array(counts, dtype=float)
    weights = np.array(raw_weights[: len(counts)])
    expected = observed.sum() * weights / weights.sum() if observed.sum() > 0 else weights
    if observed.sum() == 0:
        observed = weights.copy()
    reference = stats.chisquare(observed, expected)
    assert chi_square(observed, expected) == (float(reference.statistic), float(reference.pvalue))
