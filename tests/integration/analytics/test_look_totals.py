"""The one-query read of a flag's rollups (PostgreSQL, binary arrays) against the row-by-row sum.

``totals_from_rows`` is the portable path (the embedded SQLite mode uses it) and the reference:
generated rollups, with bucket starts on and around look boundaries, rows outside the window and
of other flags, must give exactly the same per-look totals through both.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from analytics.look_totals import LookTotals, look_totals, look_totals_row_by_row
from analytics.models import Rollup
from analytics.selectors import Window
from analytics.stats.histogram import N_BUCKETS
from flags.models import Environment

pytestmark = [pytest.mark.integration, pytest.mark.django_db]

METRICS = ["exposure", "error", "conversion", "latency", "custom:signup"]
START = datetime(2026, 12, 1, 10, 0, 0, 123_456, tzinfo=UTC)


@st.composite
def windows_and_rows(draw: st.DrawFn) -> tuple[Window, list[Rollup], int]:
    step = timedelta(minutes=draw(st.integers(1, 7)))
    looks = draw(st.integers(1, 12))
    window = Window(START, START + step * looks - timedelta(seconds=draw(st.integers(0, 59))), step)
    step_us = step // timedelta(microseconds=1)
    offsets = st.one_of(
        st.integers(-step_us, (looks + 1) * step_us),  # anywhere, outside the window too
        st.integers(0, looks).flatmap(lambda k: st.sampled_from([k * step_us - 1, k * step_us])),
    )
    rows: dict[tuple[str, str, str, datetime], Rollup] = {}
    for _ in range(draw(st.integers(0, 40))):
        flag = draw(st.sampled_from(["pdf", "pdf", "pdf", "other"]))
        variant = draw(st.sampled_from(["on", "off", "v2"]))
        metric = draw(st.sampled_from([*METRICS, "custom:unasked"]))
        at = START + timedelta(microseconds=draw(offsets))
        histogram = None
        if metric == "latency" and draw(st.booleans()):
            histogram = [0] * N_BUCKETS
            for bucket in draw(st.lists(st.integers(0, N_BUCKETS - 1), max_size=6)):
                histogram[bucket] += draw(st.integers(1, 2**40))
        rows[(flag, variant, metric, at)] = Rollup(
            flag_key=flag, variant=variant, metric=metric, bucket_start=at,
            users=draw(st.integers(0, 2**40)), events=draw(st.integers(0, 2**50)),
            value_sum=draw(st.floats(0, 1e12)), histogram=histogram,
        )  # fmt: skip
    return window, list(rows.values()), draw(st.integers(0, looks))


def assert_same(got: LookTotals, expected: LookTotals) -> None:
    assert got.looks == expected.looks
    assert got.variants == expected.variants
    for table in ("users", "events", "latency"):
        mine, theirs = getattr(got, table), getattr(expected, table)
        assert mine.keys() == theirs.keys(), table
        for key in mine:
            assert mine[key].dtype == np.int64
            np.testing.assert_array_equal(mine[key], theirs[key], err_msg=f"{table} {key}")
    assert got.latency_rows.keys() == expected.latency_rows.keys()
    for variant, prints in got.latency_rows.items():
        assert prints.same_as(expected.latency_rows[variant]), variant
        assert (np.diff(prints.starts) > 0).all()  # one row per bucket, in order


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(case=windows_and_rows())
def test_the_sql_read_equals_the_row_by_row_sum(
    environment: Environment, case: tuple[Window, list[Rollup], int]
) -> None:
    # The environment is shared by the examples: each one replaces every rollup first.
    window, rows, histograms_from_look = case
    Rollup.objects.all().delete()
    for row in rows:
        row.environment = environment
    Rollup.objects.bulk_create(rows)
    assert connection.vendor == "postgresql"
    got = look_totals(environment.pk, "pdf", window, METRICS, histograms_from_look)
    reference = look_totals_row_by_row(environment.pk, "pdf", window, METRICS, histograms_from_look)
    assert_same(got, reference)
    for per_look in got.latency.values():  # the looks a rollout check kept are not read
        assert not per_look[:histograms_from_look].any()


def test_the_read_is_one_query_and_adds_rows_of_one_look(environment: Environment) -> None:
    window = Window(START, START + timedelta(minutes=10), timedelta(minutes=5))
    histogram = [0] * N_BUCKETS
    histogram[40] = 3
    Rollup.objects.bulk_create(
        Rollup(
            environment=environment, flag_key="pdf", variant="on", metric=metric,
            bucket_start=START + timedelta(minutes=minute), users=2, events=7,
            histogram=histogram if metric == "latency" else None,
        )
        for minute in (0, 1, 4, 5, 9, 10)  # 10 is past the window's end
        for metric in ("exposure", "latency")
    )  # fmt: skip
    with CaptureQueriesContext(connection) as queries:
        totals = look_totals(environment.pk, "pdf", window, METRICS)
    assert len(queries) == 1
    assert totals.users[("on", "exposure")].tolist() == [6, 4]
    assert totals.cumulative_events("on", "latency").tolist() == [21, 35]
    assert totals.cumulative_latency("on")[:, 40].tolist() == [9, 15]
    assert totals.cumulative_users("off", "exposure").tolist() == [0, 0]


def test_a_negative_histogram_count_is_refused(environment: Environment) -> None:
    window = Window(START, START + timedelta(minutes=5), timedelta(minutes=5))
    Rollup.objects.create(
        environment=environment, flag_key="pdf", variant="on", metric="latency",
        bucket_start=START, histogram=[-1] + [0] * (N_BUCKETS - 1),
    )  # fmt: skip
    with pytest.raises(ValueError, match="negative"):
        look_totals(environment.pk, "pdf", window, METRICS)
