"""Latency histograms: fixed log-spaced buckets shared by ingestion and comparison.

Every histogram in Flagsite uses the same bucket edges, so two histograms merge by adding their
count vectors, whatever time bucket, batch or process produced them. Percentiles read from a
histogram are accurate to a known relative error (see ``RELATIVE_ERROR_BOUND``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy import stats

# Eight buckets per doubling: each bucket spans a factor of 2**(1/8) ~ 1.0905.
GROWTH = 2.0 ** (1.0 / 8.0)
LOWEST_EDGE_MS = 0.1
HIGHEST_EDGE_MS = 600_000.0  # ten minutes; anything slower lands in the overflow bucket

_N_LOG_BUCKETS = math.ceil(math.log(HIGHEST_EDGE_MS / LOWEST_EDGE_MS) / math.log(GROWTH))
# Edges e_0=0, e_1=LOWEST, ..., e_{k}; bucket i holds [e_i, e_{i+1}); the last bucket is
# [e_last, inf) and catches overflow.
BUCKET_EDGES_MS: npt.NDArray[np.float64] = np.concatenate(
    ([0.0], LOWEST_EDGE_MS * GROWTH ** np.arange(_N_LOG_BUCKETS + 1))
)
N_BUCKETS = len(BUCKET_EDGES_MS)  # the final edge opens the overflow bucket
# A value reported as its bucket's geometric midpoint is within this factor of the truth for
# every bucket between LOWEST_EDGE_MS and HIGHEST_EDGE_MS.
RELATIVE_ERROR_BOUND = math.sqrt(GROWTH) - 1.0

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]


def empty_histogram() -> IntArray:
    return np.zeros(N_BUCKETS, dtype=np.int64)


def bucket_index(latencies_ms: npt.ArrayLike) -> IntArray:
    """The bucket of each latency (negative values are clamped to zero)."""
    values = np.maximum(np.asarray(latencies_ms, dtype=np.float64), 0.0)
    return (np.searchsorted(BUCKET_EDGES_MS, values, side="right") - 1).astype(np.int64)


def histogram_of(latencies_ms: npt.ArrayLike) -> IntArray:
    return np.bincount(bucket_index(latencies_ms), minlength=N_BUCKETS).astype(np.int64)


def as_histogram(counts: npt.ArrayLike) -> IntArray:
    """Validate a stored count vector (any sequence of N_BUCKETS non-negative integers)."""
    array = np.asarray(counts, dtype=np.int64)
    if array.shape != (N_BUCKETS,):
        raise ValueError(f"a latency histogram has {N_BUCKETS} buckets, not {array.shape}")
    if (array < 0).any():
        raise ValueError("histogram counts cannot be negative")
    return array


def bucket_representatives() -> FloatArray:
    """The value reported for each bucket: its geometric midpoint.

    The zero bucket reports half its upper edge and the overflow bucket its lower edge; neither
    is covered by the relative error bound.
    """
    lower = BUCKET_EDGES_MS
    upper = np.append(BUCKET_EDGES_MS[1:], BUCKET_EDGES_MS[-1])
    mids = np.sqrt(lower * upper)
    mids[0] = BUCKET_EDGES_MS[1] / 2.0
    return np.asarray(mids, dtype=np.float64)


_REPRESENTATIVES = bucket_representatives()


def _bucket_of_rank(histogram: IntArray, rank: int) -> int:
    """Bucket holding the rank-th smallest value (1-based)."""
    return int(np.searchsorted(np.cumsum(histogram), rank, side="left"))


def percentile(histogram: IntArray, q: float) -> float | None:
    """The q-quantile (0 < q < 1) as the order statistic of rank ceil(q*n), from the histogram."""
    n = int(histogram.sum())
    if n == 0:
        return None
    rank = max(1, math.ceil(q * n))
    return float(_REPRESENTATIVES[_bucket_of_rank(histogram, rank)])


@dataclass(frozen=True)
class PercentileEstimate:
    q: float
    value: float | None
    lower: float | None  # None: too few samples for a lower confidence bound
    upper: float | None  # None: too few samples for an upper confidence bound


def percentile_with_ci(
    histogram: IntArray, q: float, confidence: float = 0.95
) -> PercentileEstimate:
    """The q-quantile with a distribution-free confidence interval.

    The number of samples below the true quantile is Binomial(n, q), so the order statistics of
    ranks l and u (chosen from binomial quantiles) bracket it with probability >= confidence.
    Binning only widens the interval: it runs from the lower edge of the bucket holding rank l to
    the upper edge of the bucket holding rank u.
    """
    n = int(histogram.sum())
    value = percentile(histogram, q)
    if n == 0:
        return PercentileEstimate(q, None, None, None)
    tail = (1.0 - confidence) / 2.0
    lower_rank = int(stats.binom.ppf(tail, n, q))
    upper_rank = int(stats.binom.ppf(1.0 - tail, n, q)) + 1
    lower = None
    upper = None
    if lower_rank >= 1:
        lower = float(BUCKET_EDGES_MS[_bucket_of_rank(histogram, lower_rank)])
    if upper_rank <= n:
        bucket = _bucket_of_rank(histogram, upper_rank)
        upper = float(BUCKET_EDGES_MS[bucket + 1]) if bucket + 1 < N_BUCKETS else math.inf
    return PercentileEstimate(q, value, lower, upper)


def percentiles_with_ci(
    histogram: IntArray, qs: tuple[float, ...], confidence: float = 0.95
) -> list[PercentileEstimate]:
    """``percentile_with_ci`` for several quantiles, with one call of the binomial quantile
    function for all of them (it is elementwise, so the ranks are the same; the call's fixed
    cost is what a check pays per percentile otherwise)."""
    n = int(histogram.sum())
    if n == 0:
        return [PercentileEstimate(q, None, None, None) for q in qs]
    tail = (1.0 - confidence) / 2.0
    probabilities = np.array([tail] * len(qs) + [1.0 - tail] * len(qs))
    ranks = stats.binom.ppf(probabilities, n, np.array(qs * 2))
    cumulative = np.cumsum(histogram)
    estimates = []
    for i, q in enumerate(qs):
        lower_rank = int(ranks[i])
        upper_rank = int(ranks[len(qs) + i]) + 1
        value = float(_REPRESENTATIVES[np.searchsorted(cumulative, max(1, math.ceil(q * n)))])
        lower = upper = None
        if lower_rank >= 1:
            lower = float(BUCKET_EDGES_MS[np.searchsorted(cumulative, lower_rank)])
        if upper_rank <= n:
            bucket = int(np.searchsorted(cumulative, upper_rank))
            upper = float(BUCKET_EDGES_MS[bucket + 1]) if bucket + 1 < N_BUCKETS else math.inf
        estimates.append(PercentileEstimate(q, value, lower, upper))
    return estimates


def log_moments(histogram: IntArray) -> tuple[int, float, float]:
    """Count, mean and variance of log(latency) using bucket midpoints (for sequential tests)."""
    n = int(histogram.sum())
    if n == 0:
        return 0, 0.0, 0.0
    logs = np.log(_REPRESENTATIVES)
    mean = float((histogram * logs).sum() / n)
    var = float((histogram * (logs - mean) ** 2).sum() / max(n - 1, 1))
    return n, mean, var


def log_moments_per_row(
    histograms: IntArray,
) -> tuple[IntArray, FloatArray, FloatArray]:
    """``log_moments`` of every row of a (rows, N_BUCKETS) matrix at once: the same two-pass
    arithmetic row by row, so each row's result equals log_moments of that row (a rollout's
    sequential latency test needs them for each of up to 500 looks). Rows with no sample give
    a count of 0 and undefined (nan) moments."""
    n = histograms.sum(axis=1)
    logs = np.log(_REPRESENTATIVES)
    with np.errstate(divide="ignore", invalid="ignore"):
        mean = (histograms * logs).sum(axis=1) / n
        var = (histograms * (logs - mean[:, np.newaxis]) ** 2).sum(axis=1) / np.maximum(n - 1, 1)
    return n, mean, var


@dataclass(frozen=True)
class LatencyLooks:
    """What the latency comparison reads of a variant's cumulative histograms, one per look:
    each look's sample count and log moments (``log_moments_per_row``) and the last look's
    histogram. A rollout check keeps the looks that can no longer change between passes and
    computes only the new ones (analytics.look_cache); the values are those of the matrix."""

    counts: IntArray
    log_means: FloatArray
    log_variances: FloatArray
    last: IntArray

    @classmethod
    def of(cls, cumulative: IntArray) -> LatencyLooks:
        """From the (looks, N_BUCKETS) cumulative histograms."""
        counts, means, variances = log_moments_per_row(cumulative)
        last = cumulative[-1] if len(cumulative) else empty_histogram()
        return cls(counts, means, variances, last)

    def extended(self, cumulative: IntArray) -> LatencyLooks:
        """These looks followed by the looks of ``cumulative`` (which continue from ``last``)."""
        if not len(cumulative):
            return self
        more = LatencyLooks.of(cumulative)
        return LatencyLooks(
            np.concatenate((self.counts, more.counts)),
            np.concatenate((self.log_means, more.log_means)),
            np.concatenate((self.log_variances, more.log_variances)),
            more.last,
        )
