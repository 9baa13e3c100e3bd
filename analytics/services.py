"""Analytics use cases: ingest a batch, purge old raw events, compare a flag's variants."""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
from django.conf import settings
from django.db import transaction
from django.utils import timezone
from prometheus_client import Counter

from analytics import storage
from analytics.models import EventBatch, EventKind, RawEvent
from analytics.selectors import (
    ConfiguredSplit,
    Window,
    comparison_inputs,
    configured_split,
    empty_series,
)
from analytics.serializers import Batch, Event, validate_batch
from analytics.stage_units import read_stage_units, unit_sample_ratio
from analytics.stats import ComparisonConfig, ComparisonReport, SampleRatioCheck, compare
from analytics.stats.histogram import N_BUCKETS, bucket_index

logger = logging.getLogger(__name__)

SDK_DROPPED_EVENTS = Counter(
    "flagsite_sdk_dropped_events_total",
    "Exposure events SDKs reported dropping because their bounded queue was full",
    ["environment"],
)

ROLLUP_BUCKET = timedelta(minutes=1)
_BUCKET_SECONDS = int(ROLLUP_BUCKET.total_seconds())
# Distinct users are tracked for these metrics; latency and custom values are per event.
USER_METRICS = frozenset({EventKind.EXPOSURE, EventKind.ERROR, EventKind.CONVERSION})


@dataclass(frozen=True)
class IngestResult:
    accepted: int
    duplicate: bool


def retention() -> timedelta:
    return timedelta(days=settings.ANALYTICS_RAW_RETENTION_DAYS)


def bucket_start(moment: datetime) -> datetime:
    """The start of the rollup bucket (minute) holding this moment."""
    seconds = int(moment.timestamp()) // _BUCKET_SECONDS * _BUCKET_SECONDS
    return datetime.fromtimestamp(seconds, UTC)


def _metric_of(event: Event) -> str:
    return f"custom:{event.name}" if event.kind == EventKind.CUSTOM else event.kind


@dataclass
class BatchAggregate:
    """What one batch adds: rollup deltas (users still zero), the earliest sighting per user
    and, for each sighting time, its rollup bucket."""

    deltas: dict[storage.RollupKey, storage.RollupDelta]
    first_seen: dict[storage.FirstSeenKey, datetime]
    buckets: dict[datetime, datetime]


def aggregate(events: list[Event]) -> BatchAggregate:
    """A metric event counts towards every flag variant in its assignments: that is how an error
    or a latency joins the cohort that saw the flag."""
    deltas: dict[storage.RollupKey, storage.RollupDelta] = defaultdict(storage.RollupDelta)
    latencies: dict[storage.RollupKey, list[float]] = defaultdict(list)
    first_seen: dict[storage.FirstSeenKey, datetime] = {}
    buckets: dict[datetime, datetime] = {}
    by_second: dict[int, datetime] = {}  # most timestamps are unique; their seconds repeat
    for event in events:
        at = event.occurred_at
        second = int(at.timestamp())
        bucket = by_second.get(second)
        if bucket is None:
            bucket = by_second[second] = bucket_start(at)
        buckets[at] = bucket
        metric = _metric_of(event)
        targets = (
            ((event.name, event.variant),)
            if event.kind == EventKind.EXPOSURE
            else event.assignments.items()
        )
        counts_users = event.kind in USER_METRICS
        for flag, variant in targets:
            key = (flag, variant, metric, bucket)
            delta = deltas[key]
            delta.events += 1
            if event.value is not None:
                delta.value_sum += event.value
                if event.kind == EventKind.LATENCY:
                    latencies[key].append(event.value)
            if counts_users:
                seen_key = (flag, variant, metric, event.context_key)
                seen = first_seen.get(seen_key)
                if seen is None or at < seen:
                    first_seen[seen_key] = at
    for key, values in latencies.items():
        deltas[key].histogram = np.bincount(bucket_index(values), minlength=N_BUCKETS).tolist()
    return BatchAggregate(deltas, first_seen, buckets)


def store_batch(environment_id: int, batch: Batch, received_at: datetime) -> IngestResult:
    """Store a validated batch atomically; a batch id seen before stores nothing."""
    summary = aggregate(batch.events)
    deltas = summary.deltas
    with transaction.atomic():
        batch_pk = storage.claim_batch(
            environment_id, batch.batch_id, len(batch.events), received_at, batch.client_dropped
        )
        if batch_pk is None:
            return IngestResult(len(batch.events), duplicate=True)
        if batch.client_dropped:
            dropped = batch.client_dropped
            transaction.on_commit(lambda: _count_client_drops(environment_id, dropped))
        storage.append_raw(environment_id, batch_pk, batch.events, received_at)
        for (flag, variant, metric, _), seen_at in storage.insert_first_seen(
            environment_id, summary.first_seen
        ):
            deltas[(flag, variant, metric, summary.buckets[seen_at])].users += 1
        # Last, so the hot rollup rows stay locked for as short a time as possible.
        storage.upsert_rollups(environment_id, deltas)
    return IngestResult(len(batch.events), duplicate=False)


def _count_client_drops(environment_id: int, dropped: int) -> None:
    SDK_DROPPED_EVENTS.labels(environment=str(environment_id)).inc(dropped)
    logger.warning(
        "an SDK dropped events (its queue was full)",
        extra={"environment_id": environment_id, "dropped": dropped},
    )


def ingest(environment_id: int, payload: Any) -> IngestResult:
    """Validate the whole batch (raises serializers.BatchInvalidError), then store it."""
    now = timezone.now()
    batch = validate_batch(payload, now, retention())
    return store_batch(environment_id, batch, now)


def purge_expired_events(chunk_size: int = 10_000, now: datetime | None = None) -> int:
    """Delete raw events (and batch ids) older than the retention period, a chunk at a time.

    Short transactions keep locks and WAL bursts small while ingestion goes on.
    """
    cutoff = (now or timezone.now()) - retention()
    deleted = 0
    while True:
        ids = list(
            RawEvent.objects.filter(received_at__lt=cutoff)
            .order_by("received_at")
            .values_list("id", flat=True)[:chunk_size]
        )
        if not ids:
            break
        with transaction.atomic():
            deleted += RawEvent.objects.filter(id__in=ids).delete()[0]
    # Batch ids go with their events: past retention a retry would be rejected as too old.
    EventBatch.objects.filter(received_at__lt=cutoff).delete()
    if deleted:
        logger.info("purged expired raw events", extra={"deleted": deleted})
    return deleted


def compare_variants(
    environment_id: int,
    flag_key: str,
    window: Window,
    control_variant: str,
    weights: dict[str, float] | None = None,
    config: ComparisonConfig | None = None,
) -> ComparisonReport:
    """The statistical comparison of every variant of a flag against the control, from rollups."""
    series = comparison_inputs(environment_id, flag_key, window)
    if not any(s.name == control_variant for s in series):
        series.append(empty_series(control_variant, window))
    return compare(series, control_variant, weights, config)


class UnknownFlagError(LookupError):
    """The flag has no state in this environment."""


@dataclass(frozen=True)
class StageSampleRatio:
    """The sample-ratio check over [start, end): the units (``unit_attribute``) exposed to each
    variant in that window, against the split served over all of it. ``check`` is None when the
    check does not apply, and ``note`` says why."""

    check: SampleRatioCheck | None
    note: str
    start: datetime | None
    end: datetime
    unit_attribute: str
    both_variants: int = 0  # units seen under two variants in the window: in no count
    missing_unit: int = 0  # events of the flag without the unit: in no count


def stage_sample_ratio(
    environment_id: int,
    flag_key: str,
    split: ConfiguredSplit,
    start: datetime | None,
    end: datetime,
    config: ComparisonConfig | None = None,
) -> StageSampleRatio:
    """SRM of the current stage: ``start`` is when the split began to be served (a rollout's
    stage start, or the state's last change). Exposures before it were made at another split,
    so counting them against today's weights (as cumulative counts did) reports a mismatch
    after every widening of a healthy rollout."""
    unit = split.unit_attribute
    if split.weights is None:
        return StageSampleRatio(None, split.srm_note, start, end, unit)
    if start is None or start >= end:
        return StageSampleRatio(
            None, "the current split was set after the window's end", start, end, unit
        )
    units = read_stage_units(environment_id, flag_key, unit, start, end, list(split.weights))
    return StageSampleRatio(
        unit_sample_ratio(units, split.weights, config),
        "",
        start,
        end,
        unit,
        units.both_variants,
        units.missing_unit,
    )


@dataclass(frozen=True)
class FlagComparison:
    split: ConfiguredSplit
    report: ComparisonReport  # its sample_ratio is sample_ratio.check
    sample_ratio: StageSampleRatio


def compare_flag(
    environment_id: int,
    flag_key: str,
    window: Window,
    control_variant: str | None = None,
    config: ComparisonConfig | None = None,
    srm_since: datetime | None = None,
) -> FlagComparison:
    """Compare a flag's variants against its off variant (or the one given) over ``window``,
    from rollups, and check the units exposed since the split was set (``srm_since``, by default
    the flag state's last change; a running rollout's stage start for the dashboards) against
    the split the flag is configured to serve, up to the window's end."""
    split = configured_split(environment_id, flag_key)
    if split is None:
        raise UnknownFlagError(flag_key)
    control = control_variant or split.control
    # No weights: the rollups' exposures are cumulative over the window, not of the stage.
    report = compare_variants(environment_id, flag_key, window, control, None, config)
    since = srm_since if srm_since is not None else split.since
    srm = stage_sample_ratio(environment_id, flag_key, split, since, window.end, config)
    return FlagComparison(split, replace(report, sample_ratio=srm.check), srm)
