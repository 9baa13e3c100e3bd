"""Custom-metric intervals and the comparison-derived guardrail verdict (pure functions)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from analytics.stats import VariantSeries, compare
from dashboards.metrics import poisson_rate, rate_ratio
from dashboards.rollout import guardrail_verdict


def test_the_poisson_interval_is_garwoods_exact_interval() -> None:
    # Known values of the exact 95% interval for 10 events: [4.795, 18.390].
    estimate = poisson_rate(10, 1)
    assert estimate.value == 10
    assert estimate.lower == pytest.approx(4.7954, abs=1e-3)
    assert estimate.upper == pytest.approx(18.3904, abs=1e-3)
    assert poisson_rate(0, 100).lower == 0.0
    assert poisson_rate(0, 100).upper == pytest.approx(3.6889 / 100, abs=1e-5)
    assert poisson_rate(5, 0).value is None


@given(st.integers(0, 10_000), st.integers(1, 100_000))
def test_the_poisson_interval_holds_the_estimate(events: int, exposed: int) -> None:
    estimate = poisson_rate(events, exposed)
    assert estimate.lower is not None
    assert estimate.upper is not None
    assert estimate.value is not None
    assert 0 <= estimate.lower <= estimate.value < estimate.upper


def test_the_poisson_interval_covers_the_true_rate() -> None:
    rng = np.random.default_rng(4)
    rate, exposed = 1.3, 200
    counts = rng.poisson(rate * exposed, size=2000)
    covered = 0
    for c in counts:
        e = poisson_rate(int(c), exposed)
        assert e.lower is not None
        assert e.upper is not None
        covered += e.lower <= rate <= e.upper
    assert covered / len(counts) >= 0.94  # exact intervals are conservative


@given(st.integers(1, 5_000), st.integers(1, 5_000), st.integers(1, 10_000))
def test_equal_rates_give_no_change_and_an_interval_around_it(
    events: int, other: int, exposed: int
) -> None:
    ratio = rate_ratio(events, exposed, events, exposed)
    assert ratio.relative_change == pytest.approx(0.0, abs=1e-12)
    assert ratio.lower is not None
    assert ratio.upper is not None
    assert ratio.lower < 0 < ratio.upper
    swapped = rate_ratio(other, exposed, events, exposed)
    direct = rate_ratio(events, exposed, other, exposed)
    assert direct.relative_change is not None
    assert swapped.relative_change is not None
    # Swapping the arms inverts the ratio.
    assert (1 + direct.relative_change) * (1 + swapped.relative_change) == pytest.approx(1.0)


def test_a_twelve_percent_lift_is_found() -> None:
    ratio = rate_ratio(3000, 2000, 3360, 2000)
    assert ratio.relative_change == pytest.approx(0.12)
    assert ratio.lower is not None
    assert ratio.upper is not None
    assert 0 < ratio.lower < 0.12 < ratio.upper
    se = math.sqrt(1 / 3000 + 1 / 3360)
    assert math.log1p(ratio.upper) - math.log(1.12) == pytest.approx(1.959964 * se, rel=1e-5)


def test_no_events_or_no_users_gives_no_ratio() -> None:
    assert rate_ratio(0, 10, 0, 10).relative_change is None
    assert rate_ratio(3, 0, 3, 10).relative_change is None


def _report(control_errors: int, treatment_errors: int, users: int = 2000):
    series = [
        VariantSeries.single_look("off", users, control_errors),
        VariantSeries.single_look("on", users, treatment_errors),
    ]
    return compare(series, "off")


@pytest.mark.parametrize(
    ("control_errors", "treatment_errors", "users", "verdict"),
    [
        (20, 160, 2000, "red"),  # far more errors in "on"
        (160, 20, 2000, "green"),  # fewer errors is no regression
        (40, 44, 2000, "green"),  # no significant difference
        (1, 2, 50, "insufficient_data"),  # below the minimum sample
    ],
)
def test_the_verdict_from_the_comparison(
    control_errors: int, treatment_errors: int, users: int, verdict: str
) -> None:
    result = guardrail_verdict(None, _report(control_errors, treatment_errors, users))
    assert result.verdict == verdict
    if verdict == "red":
        assert result.reasons == ["on: error_rate significantly higher"]


def test_without_a_comparison_there_is_no_verdict() -> None:
    assert guardrail_verdict(None, None).verdict == "insufficient_data"
