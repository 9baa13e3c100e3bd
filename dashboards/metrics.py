"""Custom metrics per variant: events per exposed user, with intervals (pure functions).

Rollups keep event counts, not distinct users, for custom events, so the per-user rate of the
comparison does not apply. The count of a variant is modelled as Poisson: the exact (Garwood)
interval for its rate per exposed user, and a normal interval on the log of the rate ratio
against the control (Wald on log scale, with 0.5 added to empty counts).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from scipy import stats


@dataclass(frozen=True)
class RateEstimate:
    value: float | None
    lower: float | None
    upper: float | None


@dataclass(frozen=True)
class RatioEstimate:
    relative_change: float | None  # ratio - 1
    lower: float | None
    upper: float | None


def poisson_rate(events: int, exposed: int, confidence: float = 0.95) -> RateEstimate:
    if exposed <= 0:
        return RateEstimate(None, None, None)
    alpha = 1 - confidence
    low = 0.0 if events == 0 else float(stats.chi2.ppf(alpha / 2, 2 * events)) / 2
    high = float(stats.chi2.ppf(1 - alpha / 2, 2 * events + 2)) / 2
    return RateEstimate(events / exposed, low / exposed, high / exposed)


def rate_ratio(
    control_events: int,
    control_exposed: int,
    treatment_events: int,
    treatment_exposed: int,
    confidence: float = 0.95,
) -> RatioEstimate:
    if min(control_exposed, treatment_exposed) <= 0 or control_events + treatment_events == 0:
        return RatioEstimate(None, None, None)
    c = control_events or 0.5
    t = treatment_events or 0.5
    log_ratio = math.log((t / treatment_exposed) / (c / control_exposed))
    se = math.sqrt(1 / c + 1 / t)
    z = float(stats.norm.ppf(0.5 + confidence / 2))
    return RatioEstimate(
        math.expm1(log_ratio), math.expm1(log_ratio - z * se), math.expm1(log_ratio + z * se)
    )
