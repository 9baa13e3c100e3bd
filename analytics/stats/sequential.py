"""Always-valid inference for metrics that are checked again and again during a rollout.

The statistic is the normal-mixture sequential probability ratio (mSPRT; Robbins 1970, in the
form used by Johari et al. 2017 for A/B tests). Write the standardised effect as
``delta = difference / sigma`` and the information after n observations as the effective sample
size ``I = n_c * n_t / (n_c + n_t)``. Under H0 the score ``S = z * sqrt(I)`` behaves like a
Brownian motion in I, and mixing the likelihood ratio exp(delta*S - delta**2*I/2) over
delta ~ N(0, tau**2) gives

    Lambda = (1 + tau**2 I) ** -1/2 * exp(tau**2 * I * z**2 / (2 * (1 + tau**2 I))),

a nonnegative martingale with mean 1 under H0. By Ville's inequality,
P(Lambda ever >= 1/alpha) <= alpha, however often one looks. The always-valid p-value is
min(1, 1 / max Lambda so far). Inverting the test gives a confidence sequence.

tau only moves power around in time, never validity: it is chosen so the boundary is tightest
when the information reaches ``design_information``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import numpy.typing as npt
from scipy import optimize, special

FloatArray = npt.NDArray[np.float64]

DEFAULT_DESIGN_INFORMATION = 2_000.0


@lru_cache(maxsize=64)
def mixture_variance(alpha: float, design_information: float = DEFAULT_DESIGN_INFORMATION) -> float:
    """tau**2 minimising the rejection boundary |z| at I = design_information."""
    log_inv_alpha = math.log(1.0 / alpha)

    def boundary_sq(x: float) -> float:
        return (1.0 + x) / x * (2.0 * log_inv_alpha + math.log1p(x))

    best = optimize.minimize_scalar(boundary_sq, bounds=(1e-3, 1e4), method="bounded")
    return float(best.x) / design_information


def log_mixture_ratio(z: npt.ArrayLike, information: npt.ArrayLike, tau2: float) -> FloatArray:
    """log Lambda for z statistics observed at the given information (arrays broadcast)."""
    zz = np.asarray(z, dtype=np.float64)
    info = np.asarray(information, dtype=np.float64)
    scaled = tau2 * info
    return np.asarray(
        -0.5 * np.log1p(scaled) + scaled * zz**2 / (2.0 * (1.0 + scaled)), dtype=np.float64
    )


def always_valid_p_values(log_ratios: npt.ArrayLike) -> FloatArray:
    """Running always-valid p-value along the last axis (the looks, in time order)."""
    running = np.maximum.accumulate(np.asarray(log_ratios, dtype=np.float64), axis=-1)
    return np.asarray(np.minimum(1.0, np.exp(-running)), dtype=np.float64)


def boundary_halfwidth(information: npt.ArrayLike, alpha: float, tau2: float) -> FloatArray:
    """Half-width, in standard errors, of the confidence sequence at the given information."""
    info = np.asarray(information, dtype=np.float64)
    scaled = tau2 * info
    with np.errstate(divide="ignore"):
        return np.asarray(
            np.sqrt((1.0 + scaled) / scaled * (2.0 * math.log(1.0 / alpha) + np.log1p(scaled))),
            dtype=np.float64,
        )


def effective_information(n_control: npt.ArrayLike, n_treat: npt.ArrayLike) -> FloatArray:
    nc = np.asarray(n_control, dtype=np.float64)
    nt = np.asarray(n_treat, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        info = nc * nt / (nc + nt)
    return np.where(np.isfinite(info), info, 0.0)


@dataclass(frozen=True)
class SequentialResult:
    p_value: float  # always-valid: running over every look supplied
    reject: bool
    difference: float
    cs_lower: float  # confidence sequence for the difference at the latest look
    cs_upper: float


def sequential_test(
    z_per_look: npt.ArrayLike,
    information_per_look: npt.ArrayLike,
    difference: float,
    standard_error: float,
    alpha: float,
    design_information: float = DEFAULT_DESIGN_INFORMATION,
) -> SequentialResult:
    """Evaluate the mSPRT over a history of looks; the last look gives the confidence sequence."""
    tau2 = mixture_variance(alpha, design_information)
    info = np.asarray(information_per_look, dtype=np.float64)
    log_ratio = log_mixture_ratio(z_per_look, info, tau2)
    p_values = always_valid_p_values(log_ratio)
    p = float(p_values[-1]) if p_values.size else 1.0
    last_info = float(info[-1]) if info.size else 0.0
    if last_info > 0 and math.isfinite(standard_error):
        half = float(boundary_halfwidth(last_info, alpha, tau2)) * standard_error
    else:
        half = math.inf
    return SequentialResult(p, p <= alpha, difference, difference - half, difference + half)


def sequential_srm_p_value(
    counts_per_look: npt.ArrayLike, weights: npt.ArrayLike, prior_concentration: float = 1.0
) -> float:
    """Always-valid p-value for a sample-ratio mismatch (Dirichlet-multinomial mixture).

    Under H0 the assignment of each user is multinomial with the configured weights; the Bayes
    factor of a Dirichlet(prior * weights) mixture against H0 is a test martingale, so its
    running maximum gives an always-valid p-value. ``counts_per_look`` is (looks, variants) of
    cumulative counts.
    """
    counts = np.atleast_2d(np.asarray(counts_per_look, dtype=np.float64))
    w = np.asarray(weights, dtype=np.float64)
    w = w / w.sum()
    a = prior_concentration * w * len(w)

    def log_beta(v: FloatArray) -> FloatArray:
        return np.asarray(
            special.gammaln(v).sum(axis=-1) - special.gammaln(v.sum(axis=-1)), dtype=np.float64
        )

    log_bf = log_beta(counts + a) - log_beta(a[np.newaxis, :]) - (counts * np.log(w)).sum(axis=-1)
    return float(always_valid_p_values(log_bf)[-1])
