"""Reads over rollups: the inputs of the statistical comparison, never a scan of raw events."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
from django.db.models import Sum

from analytics.look_totals import look_totals, window_rollups
from analytics.models import EventKind
from analytics.stage_units import TARGETING_KEY
from analytics.stats import VariantSeries
from analytics.stats.histogram import N_BUCKETS
from flags.models import FlagState

DEFAULT_LOOK_INTERVAL = timedelta(minutes=5)
COMPARED_METRICS = (EventKind.EXPOSURE, EventKind.ERROR, EventKind.CONVERSION, EventKind.LATENCY)


@dataclass(frozen=True)
class Window:
    """[start, end) with one look per ``look_interval`` for the sequential tests."""

    start: datetime
    end: datetime
    look_interval: timedelta = DEFAULT_LOOK_INTERVAL

    @property
    def looks(self) -> int:
        return max(1, math.ceil((self.end - self.start) / self.look_interval))

    def look_of(self, moment: datetime) -> int:
        return min(self.looks - 1, int((moment - self.start) / self.look_interval))


def empty_series(name: str, window: Window) -> VariantSeries:
    zeros = np.zeros(window.looks, dtype=np.int64)
    return VariantSeries(
        name, zeros, zeros.copy(), zeros.copy(), np.zeros((window.looks, N_BUCKETS), np.int64)
    )


def comparison_inputs(environment_id: int, flag_key: str, window: Window) -> list[VariantSeries]:
    """Cumulative per-look series of every variant of a flag that has data in the window."""
    totals = look_totals(environment_id, flag_key, window, COMPARED_METRICS)
    return [
        VariantSeries(
            variant,
            totals.cumulative_users(variant, EventKind.EXPOSURE),
            totals.cumulative_users(variant, EventKind.ERROR),
            totals.cumulative_users(variant, EventKind.CONVERSION),
            totals.cumulative_latency(variant),
        )
        for variant in totals.variants
    ]


@dataclass(frozen=True)
class VariantTotals:
    variant: str
    metric: str
    events: int
    users: int
    value_sum: float


def window_totals(environment_id: int, flag_key: str, window: Window) -> list[VariantTotals]:
    """Totals per variant and metric over a window (dashboards, custom metrics)."""
    rows = (
        window_rollups(environment_id, flag_key, window)
        .values("variant", "metric")
        .annotate(events=Sum("events"), users=Sum("users"), value_sum=Sum("value_sum"))
        .order_by("variant", "metric")
    )
    return [
        VariantTotals(r["variant"], r["metric"], r["events"], r["users"], r["value_sum"])
        for r in rows
    ]


@dataclass(frozen=True)
class ConfiguredSplit:
    """What a flag is set to serve in an environment, as the comparison needs it.

    ``weights`` is the declared split when every exposure goes through the default rollout;
    otherwise it is None and ``srm_note`` says why the sample-ratio check does not apply.
    ``since`` is when the state last changed (a rollout's stage is such a change): the split
    has been served since then, so the sample-ratio check counts the units exposed since then.
    ``unit_attribute`` is what the default rollout buckets by (the randomization unit).
    """

    control: str
    weights: dict[str, float] | None
    srm_note: str
    since: datetime | None = None
    version: int | None = None
    unit_attribute: str = TARGETING_KEY


# What split_of reads of a state; the version and time of its last change say since when.
_SPLIT_FIELDS = (
    "enabled", "off_variant", "rules", "default_serve", "prerequisites", "version", "updated_at",
)  # fmt: skip


def configured_split(environment_id: int, flag_key: str) -> ConfiguredSplit | None:
    """The control variant and declared split of a flag's state, or None if there is no state."""
    state = (
        FlagState.objects.filter(environment_id=environment_id, flag__key=flag_key)
        .only(*_SPLIT_FIELDS)
        .first()
    )
    return None if state is None else split_of(state)


def split_of(state: FlagState) -> ConfiguredSplit:
    """``configured_split`` of a state already read (a rollout check holds it locked)."""
    rollout = (state.default_serve or {}).get("rollout")
    unit = (rollout or {}).get("bucketBy") or TARGETING_KEY

    def split(weights: dict[str, float] | None, note: str) -> ConfiguredSplit:
        return ConfiguredSplit(
            state.off_variant, weights, note, state.updated_at, state.version, unit
        )

    if not state.enabled:
        return split(None, "the flag is off: it serves one variant")
    if not rollout:
        return split(None, "the flag serves a fixed variant")
    if state.rules or state.prerequisites:
        # Targeted users bypass the split, so exposure counts need not follow its weights.
        return split(None, "targeting rules or prerequisites route users past the split")
    weights: dict[str, float] = {}
    for entry in rollout.get("variants", []):
        weights[entry["variant"]] = weights.get(entry["variant"], 0.0) + float(entry["weight"])
    return split({v: w for v, w in weights.items() if w > 0}, "")
