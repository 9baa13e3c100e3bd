"""Simulated history for the demo: users exposed to a flag's variants over the last days, with
errors, latencies, conversions and custom events, stored through the real ingestion path (raw
events, first sightings, rollups) so the dashboards show what production data would give.

Deterministic (seeded), and idempotent: batch ids are fixed, so a second run stores nothing.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.utils import timezone

from analytics import services as analytics
from flags.models import FlagState

BATCH_EVENTS = 5_000


@dataclass(frozen=True)
class VariantProfile:
    """How the users of one variant behave."""

    share: float  # of the exposed users
    conversion: float = 0.10  # share of users who convert
    error: float = 0.02  # share of users with an error
    latency_median_ms: float = 120.0
    custom_per_user: dict[str, float] = field(default_factory=dict)  # Poisson means


@dataclass(frozen=True)
class HistorySpec:
    flag_key: str
    variants: dict[str, VariantProfile]
    users: int = 4_000
    days: float = 3.0
    latency_events_per_user: int = 1
    seed: int = 18


# "+12% invoice creation, -8% PDF exports" (seed 004), on a finished 50/50 test.
REDESIGNED_DASHBOARD = HistorySpec(
    "redesigned-dashboard",
    {
        "control": VariantProfile(
            0.5, conversion=0.10, custom_per_user={"invoice_created": 1.5, "pdf_exported": 0.8}
        ),
        "treatment": VariantProfile(
            0.5,
            conversion=0.115,
            latency_median_ms=112.0,
            custom_per_user={"invoice_created": 1.68, "pdf_exported": 0.736},
        ),
    },
)
# A 5% rollout of the new PDF engine whose "on" cohort errs far more: a rollback case.
PDF_ENGINE_REGRESSION = HistorySpec(
    "new-pdf-engine",
    {
        "off": VariantProfile(0.95, error=0.01, latency_median_ms=300.0),
        "on": VariantProfile(0.05, error=0.08, latency_median_ms=420.0),
    },
    users=6_000,
    days=1.0,
)


def _events(spec: HistorySpec, end: datetime) -> Iterator[dict[str, Any]]:
    rng = random.Random(spec.seed)
    names = list(spec.variants)
    shares = [spec.variants[n].share for n in names]
    start = end - timedelta(days=spec.days)
    span = (end - start).total_seconds() - 600  # the last exposure leaves time for its events
    for index in range(spec.users):
        variant = rng.choices(names, shares)[0]
        profile = spec.variants[variant]
        user = f"demo-user-{index:05d}"
        seen = start + timedelta(seconds=rng.uniform(0, span))
        assignments = {spec.flag_key: variant}

        def at(offset_s: float, seen: datetime = seen) -> str:
            return (seen + timedelta(seconds=offset_s)).isoformat()

        yield {"type": "exposure", "flag": spec.flag_key, "variant": variant,
               "context_key": user, "timestamp": at(0), "assignments": assignments}  # fmt: skip
        base: dict[str, Any] = {"context_key": user, "assignments": assignments}
        for n in range(spec.latency_events_per_user):
            latency = profile.latency_median_ms * math.exp(rng.gauss(0, 0.5))
            yield {**base, "type": "latency", "timestamp": at(5 + n), "value": round(latency, 2)}
        if rng.random() < profile.error:
            yield {**base, "type": "error", "timestamp": at(20)}
        if rng.random() < profile.conversion:
            yield {**base, "type": "conversion", "timestamp": at(60)}
        for name, mean in profile.custom_per_user.items():
            # The whole part plus one more with the fractional part's probability: the mean
            # as given, with less noise than a Poisson draw, so the demo shows its effects.
            count = int(mean) + (rng.random() < mean - int(mean))
            for n in range(count):
                yield {**base, "type": "custom", "name": name, "value": 1,
                       "timestamp": at(90 + n)}  # fmt: skip


def seed_history(environment_id: int, spec: HistorySpec, end: datetime | None = None) -> int:
    """Stores the simulated events; returns how many were stored (0 when already seeded)."""
    end = end or timezone.now()
    stored = 0
    batch: list[dict[str, Any]] = []
    number = 0

    def flush() -> int:
        result = analytics.ingest(
            environment_id,
            {"batch_id": f"demo-history-{spec.flag_key}-{spec.seed}-{number}", "events": batch},
        )
        return 0 if result.duplicate else result.accepted

    for event in _events(spec, end):
        batch.append(event)
        if len(batch) >= BATCH_EVENTS:
            stored += flush()
            number += 1
            batch = []
    if batch:
        stored += flush()
    # The history plays the split the flag serves now, from its start: say it was set then.
    # The state was just created, and the sample-ratio check counts only the units exposed
    # since the last targeting change, which would otherwise leave the demo with none.
    start = end - timedelta(days=spec.days)
    FlagState.objects.filter(
        environment_id=environment_id, flag__key=spec.flag_key, updated_at__gt=start
    ).update(updated_at=start)
    return stored
