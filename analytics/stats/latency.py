"""Latency comparison on histograms: Mann-Whitney U with exact tie handling per bucket.

Latency is right-skewed with a long tail, so a t-test on raw milliseconds is dominated by a few
slow requests. The rank test compares whole distributions, is invariant to any monotone
transform (log or not), and binned data are simply heavily tied data, which the tie-corrected
variance accounts for exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from analytics.stats.distributions import normal_sf
from analytics.stats.histogram import IntArray


@dataclass(frozen=True)
class RankTestResult:
    u: float  # U statistic of the treatment sample
    prob_slower: float  # P(treatment > control) + P(tie)/2: 0.5 means no shift
    z: float
    p_value: float


def mann_whitney_from_histograms(control: IntArray, treatment: IntArray) -> RankTestResult:
    """Two-sided Mann-Whitney U test (normal approximation, tie-corrected) from bucket counts.

    Each bucket is one tie group. The result equals scipy.stats.mannwhitneyu with
    method="asymptotic" and use_continuity=False on the bucket indices of the raw data.
    """
    c = control.astype(np.float64)
    t = treatment.astype(np.float64)
    n_c = c.sum()
    n_t = t.sum()
    if n_c == 0 or n_t == 0:
        return RankTestResult(0.0, 0.5, 0.0, 1.0)
    below = np.cumsum(c) - c  # control values strictly below each bucket
    u = float((t * (below + 0.5 * c)).sum())
    n = n_c + n_t
    ties = c + t
    tie_term = float((ties**3 - ties).sum()) / (n * (n - 1.0))
    var = n_c * n_t / 12.0 * ((n + 1.0) - tie_term)
    mean = n_c * n_t / 2.0
    z = (u - mean) / float(np.sqrt(var)) if var > 0 else 0.0
    return RankTestResult(u, u / (n_c * n_t), z, 2.0 * normal_sf(abs(z)))
