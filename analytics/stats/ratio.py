"""Ratio metrics analysed per randomization unit, and always-valid one-sided bounds.

A rollout randomizes *units* (accounts, when a plan buckets by ``accountId``), while errors and
conversions are counted per *request*. Requests of one unit are not independent (one broken
account sends many failing requests), so the rate of a cohort is the ratio estimator
``sum(errors_i) / sum(requests_i)`` over its units, with the cluster-robust (delta-method)
variance ``n / (n - 1) * sum((x_i - p * r_i) ** 2) / (sum r_i) ** 2``. Everything the estimator
needs is five sums over units, so cohorts are described by :class:`RatioSums` and the simulator
and the database read produce the same thing.

Zero counts have a defined answer: the rate is shrunk by half an event (``(x + 0.5) / (r + 1)``),
and the variance is never below the binomial variance of that shrunk rate, so 0 errors against
0 errors is a ratio of 1 with a wide interval (no evidence of harm), and 0.5 % against 0 is red
only when the interval says so.

The bounds are always-valid (a confidence sequence): the one-sided normal mixture martingale
(a half-normal prior on the harmful side; Robbins 1970, Howard et al. 2021) stays under 1/alpha
for all time with probability 1 - alpha, so the bound may be read at every check.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import numpy.typing as npt
from scipy import optimize, special

FloatArray = npt.NDArray[np.float64]

# Half an event on each side: a defined rate and ratio when a cohort has no events at all.
PRIOR_EVENTS = 0.5


@dataclass(frozen=True)
class RatioSums:
    """Sums over the units of one cohort for the metric ``x / r`` (events per request)."""

    units: int = 0
    x: float = 0.0  # sum of x_i (errors, conversions, custom events)
    r: float = 0.0  # sum of r_i (requests)
    xx: float = 0.0  # sum of x_i ** 2
    rr: float = 0.0  # sum of r_i ** 2
    xr: float = 0.0  # sum of x_i * r_i

    @classmethod
    def of_units(cls, x: npt.ArrayLike, r: npt.ArrayLike) -> RatioSums:
        """From per-unit counts (one entry per unit exposed)."""
        xs = np.asarray(x, dtype=np.float64)
        rs = np.asarray(r, dtype=np.float64)
        return cls(
            int(xs.size),
            float(xs.sum()),
            float(rs.sum()),
            float((xs * xs).sum()),
            float((rs * rs).sum()),
            float((xs * rs).sum()),
        )

    def __add__(self, other: RatioSums) -> RatioSums:
        return RatioSums(
            self.units + other.units,
            self.x + other.x,
            self.r + other.r,
            self.xx + other.xx,
            self.rr + other.rr,
            self.xr + other.xr,
        )


@dataclass(frozen=True)
class RateEstimate:
    rate: float  # the plain ratio x / r (0 when there are no requests)
    shrunk: float  # (x + 0.5) / (r + 1): used for ratios and variances
    variance: float  # of the shrunk rate, cluster-robust with a binomial floor


def rate_estimate(sums: RatioSums) -> RateEstimate:
    rate = sums.x / sums.r if sums.r > 0 else 0.0
    shrunk = (sums.x + PRIOR_EVENTS) / (sums.r + 2 * PRIOR_EVENTS)
    binomial = shrunk * (1.0 - shrunk) / max(sums.r, 1.0)
    robust = 0.0
    if sums.units > 1 and sums.r > 0:
        p = sums.x / sums.r
        squares = sums.xx - 2.0 * p * sums.xr + p * p * sums.rr
        robust = sums.units / (sums.units - 1) * max(squares, 0.0) / (sums.r * sums.r)
    return RateEstimate(rate, shrunk, max(robust, binomial))


@dataclass(frozen=True)
class Bounds:
    """An estimate with always-valid one-sided bounds at two levels.

    ``alarm_*``: at the test's alpha (red and yellow read the harmful side); ``clear_*``: at the
    progress level (progress needs the harmful side short of the red line)."""

    estimate: float
    alarm_low: float
    alarm_high: float
    clear_low: float
    clear_high: float


@lru_cache(maxsize=65_536)
def _multiplier(log_precision: float, alpha: float) -> float:
    x = math.exp(log_precision)
    target = math.log(1.0 / alpha)
    shrink = math.sqrt(x / (1.0 + x))

    def log_lambda(z: float) -> float:
        # log of 2 (1 + x)^-1/2 exp(x z^2 / (2 (1 + x))) Phi(z sqrt(x / (1 + x)))
        return (
            math.log(2.0)
            - 0.5 * math.log1p(x)
            + x * z * z / (2.0 * (1.0 + x))
            + float(special.log_ndtr(z * shrink))
        )

    high = 1.0
    while log_lambda(high) < target:
        high *= 2.0
    return float(optimize.brentq(lambda z: log_lambda(z) - target, 0.0, high, xtol=1e-6))


def one_sided_multiplier(standard_error: float, tau: float, alpha: float) -> float:
    """How many standard errors an always-valid one-sided bound lies from the estimate.

    ``tau`` is the scale of the harmful effects the mixture is tuned to (the red line's
    distance, in the estimate's units): it moves power around in time, never validity. The
    precision is rounded to 1/100 on the log scale (a cache key), which moves the multiplier by
    well under 1 %.
    """
    if not (standard_error > 0 and math.isfinite(standard_error)):
        return math.inf
    precision = (tau / standard_error) ** 2
    key = round(math.log(max(precision, 1e-12)), 2)
    return _multiplier(key, alpha)


def bounds(estimate: float, standard_error: float, tau: float, alpha: float, beta: float) -> Bounds:
    a = one_sided_multiplier(standard_error, tau, alpha) * standard_error
    b = one_sided_multiplier(standard_error, tau, beta) * standard_error
    if not math.isfinite(a):
        a = math.inf
    if not math.isfinite(b):
        b = math.inf
    return Bounds(estimate, estimate - a, estimate + a, estimate - b, estimate + b)


@dataclass(frozen=True)
class RateComparison:
    control: RateEstimate
    treatment: RateEstimate
    ratio: Bounds  # treatment / control (bounds exponentiated from the log scale)
    difference: Bounds  # treatment - control


def compare_rates(
    control: RatioSums,
    treatment: RatioSums,
    *,
    alpha: float,
    beta: float,
    ratio_tau: float = math.log(2.0),
    difference_tau: float = 0.02,
) -> RateComparison:
    """Flag-on against control on both scales, from the same two cohorts."""
    c, t = rate_estimate(control), rate_estimate(treatment)
    log_ratio = math.log(t.shrunk) - math.log(c.shrunk)
    log_se = math.sqrt(t.variance / t.shrunk**2 + c.variance / c.shrunk**2)
    lb = bounds(log_ratio, log_se, ratio_tau, alpha, beta)
    # Shown: the plain ratio where both rates are positive (the shrunk one only where a plain
    # ratio is undefined); the bounds always come from the shrunk rates.
    shown = t.rate / c.rate if c.rate > 0 and t.rate > 0 else math.exp(log_ratio)
    ratio = Bounds(
        shown,
        _exp(lb.alarm_low),
        _exp(lb.alarm_high),
        _exp(lb.clear_low),
        _exp(lb.clear_high),
    )
    diff_se = math.sqrt(t.variance + c.variance)
    difference = bounds(t.rate - c.rate, diff_se, difference_tau, alpha, beta)
    return RateComparison(c, t, ratio, difference)


def _exp(value: float) -> float:
    if value == math.inf:
        return math.inf
    if value == -math.inf:
        return 0.0
    return math.exp(min(value, 700.0))
