"""The SQL of ingestion: COPY and set-based upserts on PostgreSQL, plain ORM on SQLite.

SQLite exists only for the single-process demo, so its path favours simplicity over speed.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import mmh3
import orjson
from django.db import connection
from flagsite_sdk.engine.text import utf8

from analytics.models import EventBatch, FirstSeen, RawEvent, Rollup
from analytics.serializers import Event

RAW_COLUMNS = (
    "environment_id", "batch_id", "kind", "name", "variant", "context_key",
    "occurred_at", "received_at", "value", "assignments", "units",
)  # fmt: skip

FirstSeenKey = tuple[str, str, str, str]  # flag, variant, metric, context key
RollupKey = tuple[str, str, str, datetime]  # flag, variant, metric, bucket start


@dataclass
class RollupDelta:
    events: int = 0
    users: int = 0
    value_sum: float = 0.0
    histogram: list[int] | None = None


def _postgres() -> bool:
    return connection.vendor == "postgresql"


def claim_batch(
    environment_id: int, batch_id: str, count: int, received_at: datetime, client_dropped: int = 0
) -> int | None:
    """Insert the batch row; None when this batch id was already stored (a retry)."""
    table = EventBatch._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} "  # noqa: S608
            "(environment_id, batch_id, event_count, received_at, client_dropped) "
            "VALUES (%s, %s, %s, %s, %s) "
            "ON CONFLICT (environment_id, batch_id) DO NOTHING RETURNING id",
            [environment_id, batch_id, count, received_at, client_dropped],
        )
        row = cursor.fetchone()
    return None if row is None else int(row[0])


def append_raw(
    environment_id: int, batch_pk: int, events: Sequence[Event], received_at: datetime
) -> None:
    if not _postgres():
        RawEvent.objects.bulk_create(
            [
                RawEvent(
                    environment_id=environment_id,
                    batch_id=batch_pk,
                    kind=e.kind,
                    name=e.name,
                    variant=e.variant,
                    context_key=e.context_key,
                    occurred_at=e.occurred_at,
                    received_at=received_at,
                    value=e.value,
                    assignments=e.assignments,
                    units=e.units,
                )
                for e in events
            ],
            batch_size=500,
        )
        return
    dumps = orjson.dumps  # a few times faster than json.dumps; jsonb takes the text as is
    sql = f"COPY {RawEvent._meta.db_table} ({', '.join(RAW_COLUMNS)}) FROM STDIN"
    with connection.cursor() as cursor, cursor.cursor.copy(sql) as copy:
        write_row = copy.write_row
        for e in events:
            write_row(
                (
                    environment_id,
                    batch_pk,
                    e.kind,
                    e.name,
                    e.variant,
                    e.context_key,
                    e.occurred_at,
                    received_at,
                    e.value,
                    dumps(e.assignments).decode(),
                    dumps(e.units).decode(),
                )
            )


def sighting_hash(flag: str, variant: str, metric: str, context_key: str) -> int:
    """The 64-bit identity of one (flag, variant, metric, user) in analytics_firstseen.

    Lengths prefix the parts so that no two different tuples share a text; mmh3 because it is
    fast and already the engine's bucketing hash. Migration 0003 holds a frozen copy.
    """
    text = f"{len(flag)}:{flag}{len(variant)}:{variant}{len(metric)}:{metric}{context_key}"
    # bytes, never a str: a lone surrogate in a str crashes mmh3 (same hash for valid text)
    return int(mmh3.hash64(utf8(text), signed=True)[0])


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def _int_array(values: Iterable[int]) -> str:
    # One text literal, cast to bigint[] in SQL: psycopg adapts a Python list element by
    # element, which for a batch's ~1,000 sightings cost milliseconds; a join costs microseconds.
    return "{" + ",".join(map(str, values)) + "}"


def insert_first_seen(
    environment_id: int, rows: dict[FirstSeenKey, datetime]
) -> list[tuple[FirstSeenKey, datetime]]:
    """Insert first sightings; returns only those that were new (the conflict-free inserts)."""
    if not rows:
        return []
    by_hash = {sighting_hash(*key): key for key in rows}
    # A fixed order: two batches that share users then lock index entries in the same order
    # and cannot deadlock.
    hashes = sorted(by_hash)
    if not _postgres():
        existing = set(
            FirstSeen.objects.filter(
                environment_id=environment_id, sighting__in=hashes
            ).values_list("sighting", flat=True)
        )
        new = [h for h in hashes if h not in existing]
        FirstSeen.objects.bulk_create(
            [
                FirstSeen(environment_id=environment_id, sighting=h, first_seen_at=rows[by_hash[h]])
                for h in new
            ]
        )
        return [(by_hash[h], rows[by_hash[h]]) for h in new]
    table = FirstSeen._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} (environment_id, sighting, first_seen_at) "  # noqa: S608
            "SELECT %s, h, timestamptz 'epoch' + us * interval '1 microsecond' "
            "FROM unnest(%s::bigint[], %s::bigint[]) AS u(h, us) "
            "ON CONFLICT (environment_id, sighting) DO NOTHING RETURNING sighting",
            [
                environment_id,
                _int_array(hashes),
                _int_array((rows[by_hash[h]] - _EPOCH) // _MICROSECOND for h in hashes),
            ],
        )
        inserted = [by_hash[h] for (h,) in cursor.fetchall()]
    return [(key, rows[key]) for key in inserted]


_MERGE_HISTOGRAM = (
    "CASE WHEN EXCLUDED.histogram IS NULL THEN r.histogram "
    "WHEN r.histogram IS NULL THEN EXCLUDED.histogram "
    "ELSE ARRAY(SELECT a + b FROM unnest(r.histogram, EXCLUDED.histogram) "
    "WITH ORDINALITY AS u(a, b, i) ORDER BY i) END"
)


def upsert_rollups(environment_id: int, deltas: dict[RollupKey, RollupDelta]) -> None:
    keys = sorted(deltas)  # same lock order in every transaction
    if not _postgres():
        _upsert_rollups_orm(environment_id, keys, deltas)
        return
    table = Rollup._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} AS r (environment_id, flag_key, variant, metric, "  # noqa: S608
            "bucket_start, events, users, value_sum, histogram) "
            "SELECT %s, f, v, m, b, e, u, s, h::bigint[] FROM unnest(%s::text[], %s::text[], "
            "%s::text[], %s::timestamptz[], %s::bigint[], %s::bigint[], %s::float8[], %s::text[]) "
            "AS t(f, v, m, b, e, u, s, h) "
            "ON CONFLICT (environment_id, flag_key, variant, metric, bucket_start) DO UPDATE SET "
            "events = r.events + EXCLUDED.events, users = r.users + EXCLUDED.users, "
            f"value_sum = r.value_sum + EXCLUDED.value_sum, histogram = {_MERGE_HISTOGRAM}",
            [
                environment_id,
                [k[0] for k in keys],
                [k[1] for k in keys],
                [k[2] for k in keys],
                [k[3] for k in keys],
                [deltas[k].events for k in keys],
                [deltas[k].users for k in keys],
                [deltas[k].value_sum for k in keys],
                [_array_literal(deltas[k].histogram) for k in keys],
            ],
        )


def _array_literal(histogram: list[int] | None) -> str | None:
    # Rows of one statement cannot carry arrays of arrays, so each histogram travels as text.
    return None if histogram is None else "{" + ",".join(map(str, histogram)) + "}"


def _upsert_rollups_orm(
    environment_id: int, keys: Iterable[RollupKey], deltas: dict[RollupKey, RollupDelta]
) -> None:
    for key in keys:
        flag, variant, metric, bucket = key
        delta = deltas[key]
        row, _ = Rollup.objects.select_for_update().get_or_create(
            environment_id=environment_id,
            flag_key=flag,
            variant=variant,
            metric=metric,
            bucket_start=bucket,
        )
        row.events += delta.events
        row.users += delta.users
        row.value_sum += delta.value_sum
        if delta.histogram is not None:
            old = row.histogram or [0] * len(delta.histogram)
            row.histogram = [a + b for a, b in zip(old, delta.histogram, strict=True)]
        row.save()
