"""Repeated looks: the mixture SPRT keeps its false-alarm rate, a naive fixed test does not.

Each simulated rollout runs 24 hours and is checked every 5 minutes (288 looks). The
simulation is vectorised over rollouts; it uses the same functions as the comparison service.
"""

import numpy as np
import pytest
from scipy import stats

from analytics.stats import VariantSeries, compare
from analytics.stats.proportions import pooled_z
from analytics.stats.sequential import (
    always_valid_p_values,
    effective_information,
    log_mixture_ratio,
    mixture_variance,
    sequential_srm_p_value,
)

ALPHA = 0.05
ROLLOUTS = 1000
LOOKS = 24 * 60 // 5
USERS_PER_LOOK = 40  # per arm: about 11,500 users per arm over the day
BASE_RATE = 0.03
MIN_USERS = 100


def simulate(rng: np.random.Generator, rate_control: float, rate_treat: float) -> list[np.ndarray]:
    """Cumulative (users, errors) per arm, shape (ROLLOUTS, LOOKS)."""
    shape = (ROLLOUTS, LOOKS)
    n_c = rng.poisson(USERS_PER_LOOK, shape)
    n_t = rng.poisson(USERS_PER_LOOK, shape)
    x_c = rng.binomial(n_c, rate_control)
    x_t = rng.binomial(n_t, rate_treat)
    return [np.cumsum(a, axis=1) for a in (n_c, x_c, n_t, x_t)]


def alarms(
    n_c: np.ndarray, x_c: np.ndarray, n_t: np.ndarray, x_t: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per rollout: did the sequential test / the naive fixed test ever fire?"""
    z = pooled_z(x_c, n_c, x_t, n_t)
    enough = np.minimum(n_c, n_t) >= MIN_USERS
    info = effective_information(n_c, n_t)
    log_ratio = np.where(enough, log_mixture_ratio(z, info, mixture_variance(ALPHA)), -np.inf)
    sequential = always_valid_p_values(log_ratio)[:, -1] <= ALPHA
    fixed_p = np.where(enough, 2 * stats.norm.sf(np.abs(z)), 1.0)
    naive = np.asarray((fixed_p < ALPHA).any(axis=1))
    final_only = fixed_p[:, -1] < ALPHA
    return sequential, naive, final_only


def test_peeking_every_5_minutes_for_a_day_keeps_the_sequential_false_alarm_rate():
    rng = np.random.default_rng(20240601)
    sequential, naive, final_only = alarms(*simulate(rng, BASE_RATE, BASE_RATE))
    bound = ALPHA + 3 * np.sqrt(ALPHA * (1 - ALPHA) / ROLLOUTS)
    assert sequential.mean() <= bound
    # The same data, read with a fixed-horizon test at every look, alarms far too often...
    assert naive.mean() > bound
    assert naive.mean() > 3 * ALPHA
    # ...although that test is fine when it is looked at only once.
    assert final_only.mean() <= bound


def test_the_sequential_test_still_finds_a_doubled_error_rate():
    rng = np.random.default_rng(77)
    sequential, _, _ = alarms(*simulate(rng, BASE_RATE, 2 * BASE_RATE))
    assert sequential.mean() >= 0.95


def test_always_valid_p_value_never_increases():
    rng = np.random.default_rng(1)
    p = always_valid_p_values(rng.normal(size=(5, 50)))
    assert (np.diff(p, axis=1) <= 0).all()
    assert (p <= 1).all()


def test_mixture_variance_makes_the_boundary_tightest_at_the_design_information():
    tau2 = mixture_variance(ALPHA, 1000.0)
    info = np.array([100.0, 1000.0, 10000.0])

    def boundary(i: float) -> float:
        s = tau2 * i
        return float(np.sqrt((1 + s) / s * (2 * np.log(1 / ALPHA) + np.log1p(s))))

    # On the z scale a mixture boundary falls with information; at the design point it is
    # close to the lowest boundary any tau could give there.
    assert boundary(float(info[1])) == pytest.approx(3.04, abs=0.02)


def test_comparison_reports_the_confidence_sequence_around_the_difference():
    looks = 12
    users = np.arange(1, looks + 1) * 500
    control = VariantSeries(
        "off", users, users * 2 // 100, users // 10, np.zeros((looks, 183), dtype=np.int64)
    )
    treat = VariantSeries(
        "on", users, users * 5 // 100, users // 10, np.zeros((looks, 183), dtype=np.int64)
    )
    metric = compare([control, treat], control="off").comparisons[0].metrics[0]
    assert metric.sequential is not None
    seq = metric.sequential
    assert seq.reject
    assert metric.difference is not None
    assert metric.ci_lower is not None
    assert metric.ci_upper is not None
    assert seq.cs_lower < metric.difference < seq.cs_upper
    # The confidence sequence is wider than the fixed interval: the price of peeking.
    assert seq.cs_upper - seq.cs_lower > metric.ci_upper - metric.ci_lower


def test_sequential_srm_flags_a_55_45_split_and_not_a_fair_one():
    totals = np.arange(1, 21)[:, None] * 500
    skewed = np.hstack([totals * 55 // 100, totals * 45 // 100])
    fair = np.hstack([totals // 2, totals // 2])
    assert sequential_srm_p_value(skewed, [0.5, 0.5]) < 0.001
    assert sequential_srm_p_value(fair, [0.5, 0.5]) == 1.0
