"""What one rollout stage's cohorts did, per randomization unit, over one concurrent window.

A rollout check compares flag-on with control over the same time (the current stage, since it
started), counting units (the plan's ``bucket_by``: accounts for the seed's flags) rather than
requests. ``StageUnits`` is the one shape both producers give: the database read below (raw
events of the window) and the simulator's light path.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from analytics.stats.ratio import RatioSums

# The metric names of a ratio per request, as the decision's evidence keys them.
ERROR_RATE = "error_rate"
CONVERSION_RATE = "conversion_rate"


@dataclass(frozen=True)
class CohortUnits:
    """One variant's units in the window: how many were exposed, and per metric the sums over
    those units of (events, requests). A unit seen under both variants is in neither."""

    units: int = 0
    requests: int = 0
    # "error_rate", "conversion_rate", "custom:<name>" -> sums over units of (events, requests)
    metrics: dict[str, RatioSums] = field(default_factory=dict)


@dataclass(frozen=True)
class StageUnits:
    cohorts: dict[str, CohortUnits] = field(default_factory=dict)  # by variant name
    both_variants: int = 0  # units exposed to both variants in the window (left out)
    events: int = 0  # exposure and metric events of the flag in the window
    missing_unit: int = 0  # of those, events that do not carry the unit attribute
    error_events: int = 0  # error events of the flag in the window, any variant
    last_event_age_seconds: float | None = None  # None: no event of the flag in the window

    def cohort(self, variant: str) -> CohortUnits:
        return self.cohorts.get(variant) or CohortUnits()
