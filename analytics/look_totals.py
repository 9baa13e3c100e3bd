"""Per-look totals of one flag's rollups over a window: the read behind every comparison.

On PostgreSQL this is one query whatever the event volume: the rows are grouped per (variant,
metric) in SQL and come back as arrays over the binary protocol, each decoded straight into a
numpy array (the latency histograms as one (rows, N_BUCKETS) matrix per variant). Read row by
row, a day of 5-minute rollups of one flag is 2,304 rows and 105,000 histogram counts turned
into Python objects one at a time, which was most of a rollout check's time. Elsewhere (the
embedded SQLite mode) the rows are read and added up in Python; both give the same totals
(tests/integration/analytics/test_look_totals.py).
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
import psycopg
from django.db import connections, router
from django.db.models import Case, F, QuerySet, When
from psycopg.adapt import Loader

from analytics.models import EventKind, Rollup
from analytics.stats.histogram import N_BUCKETS, as_histogram

if TYPE_CHECKING:
    from analytics.selectors import Window

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]
RollupRow = tuple[str, str, datetime, int, int, float, Any]


@dataclass(frozen=True)
class RowPrints:
    """A variant's latency rows, ordered by bucket: their starts (microseconds after the
    window's start), events and value sums. Rollups only ever add, and an event that changes a
    histogram changes its row's events too, so equal prints mean equal histograms: this is how
    a rollout check knows the looks it kept from its last pass are still right."""

    starts: IntArray
    events: IntArray
    value_sums: FloatArray

    @classmethod
    def of(cls, starts: IntArray, events: IntArray, value_sums: FloatArray) -> RowPrints:
        order = np.argsort(starts, kind="stable")
        return cls(starts[order], events[order], value_sums[order])

    def before(self, start: int) -> RowPrints:
        """The rows of buckets that start before ``start`` microseconds after the window's."""
        n = int(np.searchsorted(self.starts, start))
        return RowPrints(self.starts[:n], self.events[:n], self.value_sums[:n])

    def same_as(self, other: RowPrints) -> bool:
        return (
            np.array_equal(self.starts, other.starts)
            and np.array_equal(self.events, other.events)
            and np.array_equal(self.value_sums, other.value_sums)
        )


@dataclass
class LookTotals:
    """Sums per look (not cumulative) of users and events per (variant, metric), and of the
    latency histograms per variant. Every variant with a row in the window has entries."""

    looks: int
    users: dict[tuple[str, str], IntArray] = field(default_factory=dict)
    events: dict[tuple[str, str], IntArray] = field(default_factory=dict)
    # (looks, N_BUCKETS); looks before ``histograms_from_look`` were not read and are zero.
    latency: dict[str, IntArray] = field(default_factory=dict)
    latency_rows: dict[str, RowPrints] = field(default_factory=dict)
    histograms_from_look: int = 0

    @property
    def variants(self) -> list[str]:
        return sorted({variant for variant, _ in self.users})

    def cumulative_users(self, variant: str, metric: str) -> IntArray:
        return self._cumulative(self.users, variant, metric)

    def cumulative_events(self, variant: str, metric: str) -> IntArray:
        return self._cumulative(self.events, variant, metric)

    def cumulative_latency(self, variant: str) -> IntArray:
        per_look = self.latency.get(variant)
        if per_look is None:
            return np.zeros((self.looks, N_BUCKETS), np.int64)
        return np.cumsum(per_look, axis=0)

    def _cumulative(
        self, table: dict[tuple[str, str], IntArray], variant: str, metric: str
    ) -> IntArray:
        per_look = table.get((variant, metric))
        return np.cumsum(per_look) if per_look is not None else np.zeros(self.looks, np.int64)


def totals_from_rows(
    rows: Iterable[RollupRow], window: Window, histograms_from_look: int = 0
) -> LookTotals:
    """Add up rollup rows (variant, metric, bucket_start, users, events, value_sum, histogram)
    per look; histograms only from look ``histograms_from_look`` on."""
    totals = LookTotals(window.looks, histograms_from_look=histograms_from_look)
    prints: dict[str, list[tuple[int, int, float]]] = {}
    for variant, metric, start, users, events, value_sum, histogram in rows:
        look = window.look_of(start)
        for table, n in ((totals.users, users), (totals.events, events)):
            if (variant, metric) not in table:
                table[(variant, metric)] = np.zeros(window.looks, np.int64)
            table[(variant, metric)][look] += n
        if metric != EventKind.LATENCY:
            continue
        prints.setdefault(variant, []).append(((start - window.start) // _MICROSECOND, events,
                                               value_sum))  # fmt: skip
        if histogram is not None and look >= histograms_from_look:
            if variant not in totals.latency:
                totals.latency[variant] = np.zeros((window.looks, N_BUCKETS), np.int64)
            totals.latency[variant][look] += as_histogram(histogram)
    for variant, items in prints.items():
        starts, counts, sums = zip(*items, strict=True)
        totals.latency_rows[variant] = RowPrints.of(
            np.array(starts, np.int64), np.array(counts, np.int64), np.array(sums, np.float64)
        )
    return totals


def window_rollups(environment_id: int, flag_key: str, window: Window) -> QuerySet[Rollup]:
    """The flag's rollup rows in [window.start, window.end)."""
    return Rollup.objects.filter(
        environment_id=environment_id,
        flag_key=flag_key,
        bucket_start__gte=window.start,
        bucket_start__lt=window.end,
    )


def look_totals(
    environment_id: int,
    flag_key: str,
    window: Window,
    metrics: Sequence[str],
    histograms_from_look: int = 0,
) -> LookTotals:
    """The flag's rollups in [window.start, window.end) for these metrics, summed per look; the
    latency histograms from look ``histograms_from_look`` on (a rollout check keeps what the
    earlier looks' histograms gave it: analytics.look_cache)."""
    connection = connections[router.db_for_read(Rollup)]
    if connection.vendor == "postgresql":
        return _totals_in_sql(
            connection, environment_id, flag_key, window, metrics, histograms_from_look
        )
    return look_totals_row_by_row(environment_id, flag_key, window, metrics, histograms_from_look)


def look_totals_row_by_row(
    environment_id: int,
    flag_key: str,
    window: Window,
    metrics: Sequence[str],
    histograms_from_look: int = 0,
) -> LookTotals:
    """``look_totals`` through the ORM, row by row: any database (the embedded SQLite mode
    uses it), and the reference the PostgreSQL read is tested against."""
    histograms_from = window.start + histograms_from_look * window.look_interval
    rows = (
        window_rollups(environment_id, flag_key, window)
        .filter(metric__in=list(metrics))
        .annotate(
            fresh_histogram=Case(
                When(bucket_start__gte=histograms_from, then=F("histogram")),
                default=None,
                output_field=Rollup._meta.get_field("histogram"),
            )
        )
        .values_list(
            "variant", "metric", "bucket_start", "users", "events", "value_sum", "fresh_histogram"
        )
    )
    return totals_from_rows(rows, window, histograms_from_look)


# Bucket starts come back as timestamptz[] in the binary format: microseconds since 2000-01-01
# UTC, whole numbers, from which the looks are computed exactly (Window.look_of divides the
# same microsecond counts; its float quotient is exact at these magnitudes, then truncated).
_SQL = """
SELECT variant, metric, array_agg(bucket_start), array_agg(users), array_agg(events),
       array_agg(value_sum), array_agg(bucket_start) FILTER (WHERE latency),
       array_agg(histogram) FILTER (WHERE latency)
FROM (
    SELECT variant, metric, bucket_start, users, events, value_sum, histogram,
           metric = %(latency)s AND histogram IS NOT NULL
           AND bucket_start >= %(histograms_from)s AS latency
    FROM {table}
    WHERE environment_id = %(environment)s AND flag_key = %(flag)s
      AND bucket_start >= %(start_at)s AND bucket_start < %(end_at)s
      AND metric = ANY(%(metrics)s)
) AS row_looks
GROUP BY variant, metric
"""


_POSTGRES_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def _totals_in_sql(
    connection: Any,
    environment_id: int,
    flag_key: str,
    window: Window,
    metrics: Sequence[str],
    histograms_from_look: int,
) -> LookTotals:
    connection.ensure_connection()
    # A plain (server-side binding) cursor, for binary results, wrapped as Django wraps its
    # own so the query is logged and counted like any other.
    raw = psycopg.Cursor(connection.connection)
    raw.format = psycopg.pq.Format.BINARY
    raw.adapters.register_loader(_INT8_ARRAY_OID, _Int8ArrayLoader)
    raw.adapters.register_loader(_TIMESTAMPTZ_ARRAY_OID, _Int8ArrayLoader)
    raw.adapters.register_loader(_FLOAT8_ARRAY_OID, _Float8ArrayLoader)
    params = {
        "latency": str(EventKind.LATENCY),
        "environment": environment_id,
        "flag": flag_key,
        "start_at": window.start,
        "end_at": window.end,
        "metrics": list(metrics),
        "histograms_from": window.start + histograms_from_look * window.look_interval,
    }
    wrap = connection.make_debug_cursor if connection.queries_logged else connection.make_cursor
    with wrap(raw) as cursor:
        cursor.execute(_SQL.format(table=Rollup._meta.db_table), params)
        rows = cursor.fetchall()
    totals = LookTotals(window.looks, histograms_from_look=histograms_from_look)
    start = (window.start - _POSTGRES_EPOCH) // _MICROSECOND
    step = window.look_interval // _MICROSECOND
    last = window.looks - 1

    def looks_of(starts: IntArray) -> IntArray:
        return np.minimum((starts - start) // step, last)

    for variant, metric, starts, users, events, sums, histogram_starts, histograms in rows:
        at = looks_of(starts)
        for table, values in ((totals.users, users), (totals.events, events)):
            table[(variant, metric)] = np.zeros(window.looks, np.int64)
            np.add.at(table[(variant, metric)], at, values)
        if metric == EventKind.LATENCY:
            totals.latency_rows[variant] = RowPrints.of(starts - start, events, sums)
        if histograms is not None:
            if histograms.ndim != 2 or histograms.shape[1] != N_BUCKETS:
                raise ValueError(f"a latency histogram has {N_BUCKETS} buckets")
            if (histograms < 0).any():
                raise ValueError("histogram counts cannot be negative")
            per_look = np.zeros((window.looks, N_BUCKETS), np.int64)
            at = looks_of(histogram_starts)
            if len(np.unique(at)) == len(at):
                per_look[at] = histograms  # one row per look, the usual case: no adding
            else:
                np.add.at(per_look, at, histograms)
            totals.latency[variant] = per_look
    return totals


_INT8_ARRAY_OID = psycopg.adapters.types["int8"].array_oid
_FLOAT8_ARRAY_OID = psycopg.adapters.types["float8"].array_oid
# Binary timestamptz is an int64 of microseconds since _POSTGRES_EPOCH: decoded the same way.
_TIMESTAMPTZ_ARRAY_OID = psycopg.adapters.types["timestamptz"].array_oid
_HEADER = struct.Struct(">iiI")


def _load_array(data: Any, element: np.dtype[Any], dtype: type[np.generic]) -> Any:
    """An array in PostgreSQL's binary format as a numpy array of the same shape.

    The format: dimensions, a has-nulls flag and the element type, a (size, lower bound) pair
    per dimension, then per element its length (8) and its big-endian value.
    """
    ndim, has_nulls, _ = _HEADER.unpack_from(data)
    if has_nulls:
        raise ValueError("a rollup array holds a NULL")
    if ndim == 0:
        return np.zeros(0, dtype)
    shape = struct.unpack_from(f">{2 * ndim}i", data, _HEADER.size)[::2]
    elements = np.frombuffer(data, element, offset=_HEADER.size + 8 * ndim)
    return elements["value"].astype(dtype).reshape(shape)


_INT8 = np.dtype([("length", ">i4"), ("value", ">i8")])
_FLOAT8 = np.dtype([("length", ">i4"), ("value", ">f8")])


class _Int8ArrayLoader(Loader):
    """bigint[] (or timestamptz[]) → an int64 numpy array."""

    format = psycopg.pq.Format.BINARY

    def load(self, data: Any) -> IntArray:
        loaded: IntArray = _load_array(data, _INT8, np.int64)
        return loaded


class _Float8ArrayLoader(Loader):
    """double precision[] → a float64 numpy array."""

    format = psycopg.pq.Format.BINARY

    def load(self, data: Any) -> FloatArray:
        loaded: FloatArray = _load_array(data, _FLOAT8, np.float64)
        return loaded
