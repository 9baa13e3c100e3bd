"""Rates: Wilson intervals and the two-proportion z-test, vectorised over numpy arrays."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from analytics.stats.distributions import normal_ppf, normal_sf

FloatArray = npt.NDArray[np.float64]


def wilson_interval(
    successes: npt.ArrayLike, trials: npt.ArrayLike, confidence: float = 0.95
) -> tuple[FloatArray, FloatArray]:
    """Wilson score interval; unlike the Wald interval it behaves near 0 and 1 (error rates)."""
    x = np.asarray(successes, dtype=np.float64)
    n = np.asarray(trials, dtype=np.float64)
    z = normal_ppf(0.5 + confidence / 2.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        p = x / n
        denom = 1.0 + z**2 / n
        centre = (p + z**2 / (2.0 * n)) / denom
        half = z * np.sqrt(p * (1.0 - p) / n + z**2 / (4.0 * n**2)) / denom
    return np.clip(centre - half, 0.0, 1.0), np.clip(centre + half, 0.0, 1.0)


def pooled_z(
    x_control: npt.ArrayLike,
    n_control: npt.ArrayLike,
    x_treat: npt.ArrayLike,
    n_treat: npt.ArrayLike,
) -> FloatArray:
    """z statistic of (treatment rate - control rate) with the variance pooled under H0.

    Zero when the pooled rate is 0 or 1, where the data carry no evidence either way.
    """
    xc = np.asarray(x_control, dtype=np.float64)
    nc = np.asarray(n_control, dtype=np.float64)
    xt = np.asarray(x_treat, dtype=np.float64)
    nt = np.asarray(n_treat, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        pooled = (xc + xt) / (nc + nt)
        se = np.sqrt(pooled * (1.0 - pooled) * (1.0 / nc + 1.0 / nt))
        z = (xt / nt - xc / nc) / se
    return np.where(np.isfinite(z), z, 0.0)


@dataclass(frozen=True)
class ProportionDifference:
    control_rate: float
    treatment_rate: float
    difference: float  # treatment - control
    ci_lower: float
    ci_upper: float
    relative_change: float | None  # treatment / control - 1
    z: float
    p_value: float


def two_proportion_test(
    x_control: int, n_control: int, x_treat: int, n_treat: int, confidence: float = 0.95
) -> ProportionDifference:
    """Two-sided pooled z-test, with Newcombe's hybrid-score interval for the difference.

    Newcombe's interval combines the two Wilson intervals, so it keeps its coverage for the small
    rates (errors) where the Wald interval of the difference undercovers.
    """
    z = float(pooled_z(x_control, n_control, x_treat, n_treat))
    p_value = 2.0 * normal_sf(abs(z))
    pc = x_control / n_control
    pt = x_treat / n_treat
    lc, uc = (float(v) for v in wilson_interval(x_control, n_control, confidence))
    lt, ut = (float(v) for v in wilson_interval(x_treat, n_treat, confidence))
    diff = pt - pc
    lower = diff - float(np.sqrt((pt - lt) ** 2 + (uc - pc) ** 2))
    upper = diff + float(np.sqrt((ut - pt) ** 2 + (pc - lc) ** 2))
    relative = pt / pc - 1.0 if pc > 0 else None
    return ProportionDifference(pc, pt, diff, lower, upper, relative, z, p_value)
