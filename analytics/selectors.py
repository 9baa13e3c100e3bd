"""Reads over rollups: the inputs of the statistical comparison, never a scan of raw events."""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
from django.db.models import Sum

from analytics.models import EventKind, Rollup
from analytics.stats import VariantSeries
from analytics.stats.histogram import N_BUCKETS, as_histogram
from flags.models import FlagState

DEFAULT_LOOK_INTERVAL = timedelta(minutes=5)


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
    rows = Rollup.objects.filter(
        environment_id=environment_id,
        flag_key=flag_key,
        bucket_start__gte=window.start,
        bucket_start__lt=window.end,
        metric__in=[EventKind.EXPOSURE, EventKind.ERROR, EventKind.CONVERSION, EventKind.LATENCY],
    ).values_list("variant", "metric", "bucket_start", "users", "histogram")
    looks = window.looks
    counts: dict[str, dict[str, np.ndarray]] = defaultdict(
        lambda: {m: np.zeros(looks, np.int64) for m in ("exposure", "error", "conversion")}
    )
    latency: dict[str, np.ndarray] = {}
    for variant, metric, start, users, histogram in rows:
        look = window.look_of(start)
        if metric == EventKind.LATENCY:
            if histogram is not None:
                per_look = latency.setdefault(variant, np.zeros((looks, N_BUCKETS), np.int64))
                per_look[look] += as_histogram(histogram)
            _ = counts[variant]  # a variant with latency data only still gets a series
        else:
            counts[variant][metric][look] += users
    series = []
    for variant in sorted(counts):
        per_metric = counts[variant]
        hist = latency.get(variant, np.zeros((looks, N_BUCKETS), np.int64))
        series.append(
            VariantSeries(
                variant,
                np.cumsum(per_metric["exposure"]),
                np.cumsum(per_metric["error"]),
                np.cumsum(per_metric["conversion"]),
                np.cumsum(hist, axis=0),
            )
        )
    return series


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
        Rollup.objects.filter(
            environment_id=environment_id,
            flag_key=flag_key,
            bucket_start__gte=window.start,
            bucket_start__lt=window.end,
        )
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
    """

    control: str
    weights: dict[str, float] | None
    srm_note: str


def configured_split(environment_id: int, flag_key: str) -> ConfiguredSplit | None:
    """The control variant and declared split of a flag's state, or None if there is no state."""
    state = (
        FlagState.objects.filter(environment_id=environment_id, flag__key=flag_key)
        .only("enabled", "off_variant", "rules", "default_serve", "prerequisites")
        .first()
    )
    if state is None:
        return None
    rollout = (state.default_serve or {}).get("rollout")
    if not state.enabled:
        return ConfiguredSplit(state.off_variant, None, "the flag is off: it serves one variant")
    if not rollout:
        return ConfiguredSplit(state.off_variant, None, "the flag serves a fixed variant")
    if state.rules or state.prerequisites:
        # Targeted users bypass the split, so exposure counts need not follow its weights.
        return ConfiguredSplit(
            state.off_variant, None, "targeting rules or prerequisites route users past the split"
        )
    weights: dict[str, float] = {}
    for entry in rollout.get("variants", []):
        weights[entry["variant"]] = weights.get(entry["variant"], 0.0) + float(entry["weight"])
    return ConfiguredSplit(state.off_variant, {v: w for v, w in weights.items() if w > 0}, "")
