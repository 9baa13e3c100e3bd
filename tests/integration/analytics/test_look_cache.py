"""What a rollout check keeps of the looks that ended (analytics.look_cache).

The contract: whatever happened to the rollups between two checks (new buckets, a late event in
a kept look, a deleted row, a variant that appears), the second check's totals and latency looks
equal those of a full read, bit for bit; the histograms of kept looks are not read again when
their rows are unchanged; and an unreachable cache only means a full read.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest
from django.db import connection
from django.test import override_settings
from django.test.utils import CaptureQueriesContext
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from analytics import look_cache
from analytics.look_cache import SETTLE, totals_with_latency
from analytics.look_totals import LookTotals, look_totals
from analytics.models import Rollup
from analytics.selectors import Window
from analytics.stats.histogram import N_BUCKETS, LatencyLooks
from flags.models import Environment

pytestmark = [pytest.mark.integration, pytest.mark.django_db]

METRICS = ["exposure", "error", "conversion", "latency"]
START = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
STEP = timedelta(minutes=5)


def window_at(now: datetime) -> Window:
    return Window(START, now, STEP)


def full_read(
    environment: Environment, flag: str, now: datetime
) -> tuple[LookTotals, dict[str, LatencyLooks]]:
    totals = look_totals(environment.pk, flag, window_at(now), METRICS)
    return totals, {v: LatencyLooks.of(totals.cumulative_latency(v)) for v in totals.latency_rows}


def assert_equal(
    got: tuple[LookTotals, dict[str, LatencyLooks]],
    expected: tuple[LookTotals, dict[str, LatencyLooks]],
) -> None:
    (totals, latency), (reference, reference_latency) = got, expected
    assert totals.variants == reference.variants
    for table in ("users", "events"):
        mine, theirs = getattr(totals, table), getattr(reference, table)
        assert mine.keys() == theirs.keys()
        for key in mine:
            np.testing.assert_array_equal(mine[key], theirs[key])
    assert latency.keys() == reference_latency.keys()
    for variant, looks in latency.items():
        want = reference_latency[variant]
        for part in ("counts", "log_means", "log_variances", "last"):
            # bit for bit, nan (a look without samples) included
            np.testing.assert_array_equal(getattr(looks, part), getattr(want, part), part)


def histogram(rng: np.random.Generator, samples: int) -> list[int]:
    counts = np.zeros(N_BUCKETS, np.int64)
    np.add.at(counts, rng.integers(60, 110, samples), 1)
    return [int(c) for c in counts]


def add_rows(
    environment: Environment, flag: str, rng: np.random.Generator, looks: range, variants: list[str]
) -> None:
    """One minute bucket per look, per variant: exposure and latency rows (a histogram whose
    count is the row's events, as ingestion writes them)."""
    rows = []
    for look in looks:
        for variant in variants:
            at = START + look * STEP + timedelta(minutes=int(rng.integers(0, 5)))
            samples = int(rng.integers(0, 40))
            rows.append(Rollup(
                environment=environment, flag_key=flag, variant=variant, metric="exposure",
                bucket_start=at, users=samples, events=samples,
            ))  # fmt: skip
            if samples:
                rows.append(Rollup(
                    environment=environment, flag_key=flag, variant=variant, metric="latency",
                    bucket_start=at, events=samples, value_sum=float(rng.integers(1, 10**6)),
                    histogram=histogram(rng, samples),
                ))  # fmt: skip
    Rollup.objects.bulk_create(rows, ignore_conflicts=True)


def late_event(
    environment: Environment,
    flag: str,
    rng: np.random.Generator,
    before: datetime | None = None,
) -> bool:
    """One more latency event in an existing row (rollups only add), in a bucket before `before`
    when given: False if there is none. The row is chosen by `rng`, so a seed picks the same one."""
    rows = Rollup.objects.filter(environment=environment, flag_key=flag, metric="latency")
    if before is not None:
        rows = rows.filter(bucket_start__lt=before)
    keys = list(rows.order_by("pk").values_list("pk", flat=True))
    if not keys:
        return False
    row = Rollup.objects.get(pk=keys[int(rng.integers(0, len(keys)))])
    bucket = int(rng.integers(0, N_BUCKETS))
    row.histogram = [c + (i == bucket) for i, c in enumerate(row.histogram)]
    row.events += 1
    row.value_sum += 17.0
    row.save()
    return True


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    first_looks=st.integers(1, 30),
    more_looks=st.integers(0, 6),
    change=st.sampled_from(["none", "late_event", "deleted_row", "new_variant"]),
    seed=st.integers(0, 2**32 - 1),
)
def test_a_second_check_equals_a_full_read_whatever_changed(
    environment: Environment, first_looks: int, more_looks: int, change: str, seed: int
) -> None:
    rng = np.random.default_rng(seed)
    flag = f"f-{uuid.uuid4().hex[:12]}"  # its own cache key: examples share the environment
    add_rows(environment, flag, rng, range(first_looks), ["on", "off"])
    first_now = START + first_looks * STEP + SETTLE
    assert_equal(
        totals_with_latency(environment.pk, flag, window_at(first_now), METRICS, first_now),
        full_read(environment, flag, first_now),
    )
    add_rows(environment, flag, rng, range(first_looks, first_looks + more_looks), ["on", "off"])
    if change == "late_event":
        late_event(environment, flag, rng)
    elif change == "deleted_row":
        keys = list(
            Rollup.objects.filter(flag_key=flag).order_by("pk").values_list("pk", flat=True)
        )
        Rollup.objects.filter(pk=keys[int(rng.integers(0, len(keys)))]).delete()
    elif change == "new_variant":
        add_rows(environment, flag, rng, range(first_looks + more_looks), ["v2"])
    now = first_now + more_looks * STEP
    assert_equal(
        totals_with_latency(environment.pk, flag, window_at(now), METRICS, now),
        full_read(environment, flag, now),
    )


def test_kept_looks_are_not_read_again_and_a_late_event_is_seen(environment: Environment) -> None:
    rng = np.random.default_rng(5)
    add_rows(environment, "pdf", rng, range(12), ["on", "off"])
    now = START + 12 * STEP + SETTLE
    totals_with_latency(environment.pk, "pdf", window_at(now), METRICS, now)  # keeps 12 looks
    add_rows(environment, "pdf", rng, range(12, 13), ["on", "off"])
    later = now + STEP
    with CaptureQueriesContext(connection) as queries:
        totals, latency = totals_with_latency(
            environment.pk, "pdf", window_at(later), METRICS, later
        )
    assert len(queries) == 1
    assert totals.histograms_from_look == 12  # only the newer looks' histograms were read
    assert_equal((totals, latency), full_read(environment, "pdf", later))

    # in one of the 12 kept looks (an event in look 12, read anyway, would change nothing kept)
    assert late_event(environment, "pdf", rng, before=START + 12 * STEP)
    with CaptureQueriesContext(connection) as queries:
        totals, latency = totals_with_latency(
            environment.pk, "pdf", window_at(later), METRICS, later
        )
    assert len(queries) == 2  # the kept looks no longer match their rows: everything again
    assert totals.histograms_from_look == 0
    assert_equal((totals, latency), full_read(environment, "pdf", later))


def test_the_kept_looks_advance_every_few_looks(environment: Environment) -> None:
    rng = np.random.default_rng(6)
    add_rows(environment, "pdf", rng, range(10), ["on", "off"])
    now = START + 10 * STEP + SETTLE
    seen = []
    for look in range(10, 10 + 2 * look_cache.KEEP_EVERY + 1):
        add_rows(environment, "pdf", rng, range(look, look + 1), ["on", "off"])
        now += STEP
        got = totals_with_latency(environment.pk, "pdf", window_at(now), METRICS, now)
        assert_equal(got, full_read(environment, "pdf", now))
        seen.append(got[0].histograms_from_look)
    # The first check reads everything and keeps the 11 looks that had ended; the next ones
    # read from there until KEEP_EVERY more have ended, which that check keeps.
    every = look_cache.KEEP_EVERY
    assert seen == [0] + [11] * every + [11 + every] * every


def looks_cache_at(url: str) -> dict[str, Any]:
    return {
        "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
        "rollup_looks": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": url,
            "OPTIONS": {"socket_timeout": 0.5, "socket_connect_timeout": 0.5},
        },
    }


@pytest.fixture
def cache_retried(monkeypatch: pytest.MonkeyPatch) -> None:
    """Whatever a test does to the cache, the next test starts with it in use."""
    monkeypatch.setattr(look_cache, "_unavailable_until", 0.0)


def test_an_unreachable_cache_means_a_full_read(
    environment: Environment, cache_retried: None
) -> None:
    rng = np.random.default_rng(9)
    add_rows(environment, "pdf", rng, range(8), ["on", "off"])
    now = START + 8 * STEP + SETTLE
    with override_settings(CACHES=looks_cache_at("redis://127.0.0.1:9/0")):  # nothing listens
        for _ in range(2):
            got = totals_with_latency(environment.pk, "pdf", window_at(now), METRICS, now)
            assert got[0].histograms_from_look == 0
            assert_equal(got, full_read(environment, "pdf", now))


class SilentServer:
    """Accepts connections and never answers: a stalled Redis. Counts the connections."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.accepted: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        with contextlib.suppress(OSError):
            while True:
                self.accepted.append(self.listener.accept()[0])

    def close(self) -> None:
        for conn in self.accepted:
            conn.close()
        self.listener.close()


def test_a_stalled_cache_is_asked_once_then_left_alone(
    environment: Environment, cache_retried: None
) -> None:
    rng = np.random.default_rng(10)
    add_rows(environment, "pdf", rng, range(8), ["on", "off"])
    now = START + 8 * STEP + SETTLE
    server = SilentServer()
    try:
        with override_settings(CACHES=looks_cache_at(f"redis://127.0.0.1:{server.port}/0")):
            for _ in range(3):
                got = totals_with_latency(environment.pk, "pdf", window_at(now), METRICS, now)
                assert_equal(got, full_read(environment, "pdf", now))
        # One timed-out request; the later reads and writes of the three checks skipped it.
        assert len(server.accepted) == 1
        assert look_cache._unavailable_until > time.monotonic()
    finally:
        server.close()


def test_a_window_whose_looks_shrank_reads_everything(environment: Environment) -> None:
    """A clock that goes back (a simulation's) cannot use looks kept from its future."""
    rng = np.random.default_rng(11)
    add_rows(environment, "pdf", rng, range(20), ["on", "off"])
    later = START + 20 * STEP + SETTLE
    totals_with_latency(environment.pk, "pdf", window_at(later), METRICS, later)
    earlier = START + 6 * STEP
    got = totals_with_latency(environment.pk, "pdf", window_at(earlier), METRICS, earlier)
    assert got[0].histograms_from_look == 0
    assert_equal(got, full_read(environment, "pdf", earlier))


@settings(max_examples=200, deadline=None)
@given(
    st.integers(1, 20).flatmap(
        lambda looks: st.tuples(
            st.lists(st.lists(st.integers(0, 50), min_size=N_BUCKETS, max_size=N_BUCKETS),
                     min_size=looks, max_size=looks),
            st.integers(0, looks),
        )
    )
)  # fmt: skip
def test_latency_looks_extended_equal_those_of_the_whole_matrix(
    case: tuple[list[list[int]], int],
) -> None:
    per_look, split = case
    cumulative = np.cumsum(np.array(per_look, np.int64), axis=0)
    whole = LatencyLooks.of(cumulative)
    head = LatencyLooks.of(cumulative[:split]) if split else LatencyLooks.of(cumulative[:0])
    joined = head.extended(cumulative[split:])
    for part in ("counts", "log_means", "log_variances", "last"):
        np.testing.assert_array_equal(getattr(joined, part), getattr(whole, part), part)
