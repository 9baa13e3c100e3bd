"""Analytics storage: append-only raw events, idempotency keys, rollups and first sightings.

Raw events are written with COPY and never updated; comparisons read the rollups, and the
per-stage unit read (analytics.stage_units) the raw events of the stage. See
docs/analytics-storage.md for the layout and how it scales out.
"""

from __future__ import annotations

import json
from typing import Any

from django.db import models
from django.db.backends.base.base import BaseDatabaseWrapper

from flags.models import Environment


class HistogramField(models.Field):  # type: ignore[type-arg]
    """Latency histogram counts: bigint[] on PostgreSQL, so an upsert adds two histograms in SQL;
    JSON text on SQLite (the single-process demo), where Python adds them."""

    description = "Latency histogram counts"

    def db_type(self, connection: BaseDatabaseWrapper) -> str:
        return "bigint[]" if connection.vendor == "postgresql" else "text"

    def from_db_value(self, value: Any, expression: Any, connection: BaseDatabaseWrapper) -> Any:
        if value is None or isinstance(value, list):
            return value
        return json.loads(value)

    def get_db_prep_value(
        self, value: Any, connection: BaseDatabaseWrapper, prepared: bool = False
    ) -> Any:
        if value is None:
            return None
        counts = [int(v) for v in value]
        return counts if connection.vendor == "postgresql" else json.dumps(counts)


class EventKind(models.TextChoices):
    EXPOSURE = "exposure", "Exposure"
    ERROR = "error", "Error"
    LATENCY = "latency", "Latency (ms)"
    CONVERSION = "conversion", "Conversion"
    CUSTOM = "custom", "Custom"


class EventBatch(models.Model):
    """One accepted batch; the unique key makes a retried batch a no-op."""

    environment = models.ForeignKey(Environment, on_delete=models.CASCADE, related_name="+")
    batch_id = models.CharField(max_length=100)
    event_count = models.PositiveIntegerField()
    received_at = models.DateTimeField()
    client_dropped = models.PositiveIntegerField(
        default=0, help_text="Events the sending SDK dropped since its previous batch."
    )

    class Meta:
        verbose_name_plural = "event batches"
        constraints = [
            models.UniqueConstraint(fields=["environment", "batch_id"], name="event_batch_unique")
        ]
        indexes = [models.Index(fields=["received_at"], name="event_batch_received")]

    def __str__(self) -> str:
        return self.batch_id


class RawEvent(models.Model):
    """One event as received. No foreign-key constraints: COPY stays cheap, and retention (not
    a cascade over millions of rows) removes events of a deleted environment."""

    id = models.BigAutoField(primary_key=True)
    environment = models.ForeignKey(
        Environment,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        db_index=False,
        related_name="+",
    )
    batch = models.ForeignKey(
        EventBatch,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        db_index=False,
        related_name="+",
    )
    kind = models.CharField(max_length=16, choices=EventKind.choices)
    # The flag key of an exposure, the metric name of a custom event, else empty.
    name = models.CharField(max_length=100, blank=True)
    variant = models.CharField(max_length=100, blank=True)
    context_key = models.CharField(max_length=256)
    occurred_at = models.DateTimeField()
    received_at = models.DateTimeField()
    value = models.FloatField(null=True, blank=True)
    assignments = models.JSONField(default=dict)
    # Randomization units (attribute name -> id), e.g. {"accountId": "acct-7"}: a rollout that
    # buckets by an attribute other than the targeting key analyses per value of it.
    units = models.JSONField(default=dict)

    class Meta:
        indexes = [
            # Retention deletes by arrival order, which is also insertion order.
            models.Index(fields=["received_at"], name="raw_event_received"),
            models.Index(fields=["environment", "name", "occurred_at"], name="raw_event_flag"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.context_key}"


class Rollup(models.Model):
    """Totals per (environment, flag, variant, metric, minute).

    ``users`` counts the users first seen for this (flag, variant, metric) in this bucket, so it
    adds up exactly over any run of buckets (see FirstSeen).
    """

    environment = models.ForeignKey(Environment, on_delete=models.CASCADE, related_name="+")
    flag_key = models.CharField(max_length=100)
    variant = models.CharField(max_length=100)
    # exposure, error, latency, conversion or "custom:<name>"
    metric = models.CharField(max_length=120)
    bucket_start = models.DateTimeField()
    events = models.BigIntegerField(default=0)
    users = models.BigIntegerField(default=0)
    value_sum = models.FloatField(default=0.0)
    # Latency only: counts per bucket of analytics.stats.histogram.BUCKET_EDGES_MS.
    histogram = HistogramField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["environment", "flag_key", "variant", "metric", "bucket_start"],
                name="rollup_key_unique",
            )
        ]
        indexes = [
            models.Index(fields=["environment", "flag_key", "bucket_start"], name="rollup_window")
        ]

    def __str__(self) -> str:
        return f"{self.flag_key}/{self.variant}/{self.metric}@{self.bucket_start:%Y-%m-%d %H:%M}"


class FirstSeen(models.Model):
    """The first time a user was exposed to (or erred, or converted under) a flag variant.

    Inserted with ON CONFLICT DO NOTHING: the rows actually inserted are the new distinct users
    that the rollups add, which keeps distinct counts exact and additive. A sighting is stored
    as a 64-bit hash of (flag, variant, metric, context key) rather than those four strings: the
    unique index is then one bigint per row, which made ingestion markedly faster, and the raw
    events keep the strings. Two sightings collide with probability about n^2 / 2^65 (under one
    in a million for ten million sightings per environment); a collision undercounts one user.
    """

    environment = models.ForeignKey(Environment, on_delete=models.CASCADE, related_name="+")
    sighting = models.BigIntegerField(
        help_text="analytics.storage.sighting_hash(flag, variant, metric, context key)"
    )
    first_seen_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["environment", "sighting"], name="first_seen_unique")
        ]

    def __str__(self) -> str:
        return f"{self.sighting:x} at {self.first_seen_at:%Y-%m-%d %H:%M}"


# The exporters' models live in their own module; importing them here registers them.
from analytics.exports.models import Exporter, ExportRejection  # noqa: E402

__all__ = ["EventBatch", "ExportRejection", "Exporter", "FirstSeen", "RawEvent", "Rollup"]
