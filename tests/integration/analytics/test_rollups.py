"""Rollups agree with the raw events they summarise, and feed the comparison and retention."""

from __future__ import annotations

import random
import threading
from collections import Counter, defaultdict
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import pytest
from django.db import connection
from django.utils import timezone

from analytics import services
from analytics.models import EventBatch, RawEvent, Rollup
from analytics.selectors import Window
from analytics.stats.histogram import histogram_of
from flags.models import Environment
from tests.integration.analytics.conftest import exposure, metric

pytestmark = pytest.mark.integration


def minute(moment: datetime) -> datetime:
    return services.bucket_start(moment)


def random_batches(start: datetime, batches: int, size: int, seed: int) -> list[dict[str, Any]]:
    """Batches in time order, each spanning a few minutes, with users recurring across them."""
    rng = random.Random(seed)
    out = []
    for b in range(batches):
        events = []
        for _ in range(size):
            at = start + timedelta(seconds=b * 150 + rng.uniform(0, 150))
            user = f"u{rng.randrange(400)}"
            checkout = "on" if int(user[1:]) % 2 else "off"
            banner = rng.choice(["a", "b", "c"])
            assignments = {"checkout": checkout, "banner": banner}
            kind = rng.choice(["exposure", "exposure", "error", "latency", "conversion", "custom"])
            if kind == "exposure":
                flag = rng.choice(["checkout", "banner"])
                events.append(exposure(flag, assignments[flag], user, at, **assignments))
            elif kind == "latency":
                value = round(rng.lognormvariate(4, 1), 3)
                events.append(metric(kind, user, at, assignments, value=value))
            elif kind == "custom":
                events.append(metric(kind, user, at, assignments, name="items", value=2.5))
            else:
                events.append(metric(kind, user, at, assignments))
        out.append({"batch_id": f"batch-{seed}-{b}", "events": events})
    return out


def expected_from_raw(environment_id: int) -> tuple[dict[Any, list[Any]], dict[Any, set[str]]]:
    totals: dict[Any, list[Any]] = defaultdict(lambda: [0, 0.0, []])
    first: dict[tuple[str, str, str, str], datetime] = {}
    for e in RawEvent.objects.filter(environment_id=environment_id).order_by("id"):
        metric_name = f"custom:{e.name}" if e.kind == "custom" else e.kind
        targets = [(e.name, e.variant)] if e.kind == "exposure" else e.assignments.items()
        for flag, variant in targets:
            key = (flag, variant, metric_name, minute(e.occurred_at))
            totals[key][0] += 1
            totals[key][1] += e.value or 0.0
            if e.kind == "latency":
                totals[key][2].append(e.value)
            if e.kind in {"exposure", "error", "conversion"}:
                user_key = (flag, variant, metric_name, e.context_key)
                if user_key not in first or e.occurred_at < first[user_key]:
                    first[user_key] = e.occurred_at
    new_users: dict[Any, set[str]] = defaultdict(set)
    for (flag, variant, metric_name, user), at in first.items():
        new_users[(flag, variant, metric_name, minute(at))].add(user)
    return totals, new_users


@pytest.mark.django_db
def test_rollups_agree_with_the_raw_events(environment: Environment) -> None:
    start = minute(timezone.now() - timedelta(hours=2))
    for body in random_batches(start, batches=12, size=400, seed=1):
        services.ingest(environment.pk, body)
    totals, new_users = expected_from_raw(environment.pk)
    rollups = {
        (r.flag_key, r.variant, r.metric, r.bucket_start): r
        for r in Rollup.objects.filter(environment=environment)
    }
    assert set(rollups) == set(totals)
    for key, (events, value_sum, latencies) in totals.items():
        row = rollups[key]
        assert row.events == events, key
        assert row.value_sum == pytest.approx(value_sum), key
        assert row.users == len(new_users.get(key, ())), key
        if latencies:
            assert row.histogram == histogram_of(latencies).tolist(), key
        else:
            assert row.histogram is None
    # Distinct users over the whole window are exact: the sum of the per-bucket new users.
    exposed = Counter[tuple[str, str]]()
    for (flag, variant, m, _), row in rollups.items():
        if m == "exposure":
            exposed[(flag, variant)] += row.users
    raw_exposed = Counter(
        (flag, variant)
        for flag, variant, _ in set(
            RawEvent.objects.filter(kind="exposure").values_list("name", "variant", "context_key")
        )
    )
    assert exposed == raw_exposed


@pytest.mark.django_db(transaction=True)
def test_concurrent_retries_of_one_batch_store_it_once(environment: Environment) -> None:
    body = random_batches(minute(timezone.now()), batches=1, size=500, seed=2)[0]
    results: list[services.IngestResult] = []

    def post() -> None:
        try:
            results.append(services.ingest(environment.pk, body))
        finally:
            connection.close()

    threads = [threading.Thread(target=post) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(r.duplicate for r in results) == [False, True, True, True]
    assert EventBatch.objects.count() == 1
    assert RawEvent.objects.count() == 500


@pytest.mark.django_db
def test_comparison_from_rollups_finds_a_doubled_error_rate_and_a_skewed_split(
    environment: Environment,
) -> None:
    rng = np.random.default_rng(8)
    start = minute(timezone.now() - timedelta(hours=3))
    events: list[dict[str, Any]] = []
    # 55/45 split of 6,000 users on a 50/50 flag; the "on" cohort errs twice as often.
    for i in range(6000):
        variant = "off" if rng.random() < 0.55 else "on"
        at = start + timedelta(seconds=float(rng.uniform(0, 7200)))
        user = f"user-{i}"
        events.append(exposure("checkout", variant, user, at))
        if rng.random() < (0.04 if variant == "on" else 0.02):
            events.append(metric("error", user, at, {"checkout": variant}))
        latency = float(rng.lognormal(4.0, 0.7)) * (1.0 if variant == "off" else 1.3)
        events.append(metric("latency", user, at, {"checkout": variant}, value=latency))
    for n, chunk in enumerate(range(0, len(events), 5000)):
        services.ingest(
            environment.pk, {"batch_id": f"c{n}", "events": events[chunk : chunk + 5000]}
        )
    window = Window(start, start + timedelta(hours=2, minutes=5))
    report = services.compare_variants(
        environment.pk, "checkout", window, "off", weights={"off": 50, "on": 50}
    )
    assert report.sample_ratio is not None
    assert report.sample_ratio.mismatch
    metrics = {m.metric: m for m in report.comparisons[0].metrics}
    error = metrics["error_rate"]
    assert error.status == "ok"
    assert error.significant
    assert error.sequential is not None
    assert error.sequential.reject
    assert error.relative_change is not None
    assert 0.4 < error.relative_change < 2.0
    assert metrics["latency"].significant
    assert {v.name: v.exposed_users for v in report.variants}["off"] > 3000
    assert metrics["conversion_rate"].status == "insufficient_data"


@pytest.mark.django_db
def test_retention_deletes_only_expired_raw_events(environment: Environment, settings: Any) -> None:
    settings.ANALYTICS_RAW_RETENTION_DAYS = 7
    now = timezone.now()
    for n in range(3):
        services.ingest(environment.pk, random_batches(minute(now), 1, 50, seed=10 + n)[0])
    RawEvent.objects.filter(batch__batch_id__in=["batch-10-0", "batch-11-0"]).update(
        received_at=now - timedelta(days=8)
    )
    EventBatch.objects.filter(batch_id__in=["batch-10-0", "batch-11-0"]).update(
        received_at=now - timedelta(days=8)
    )
    rollups_before = Rollup.objects.count()
    assert services.purge_expired_events(chunk_size=30) == 100
    assert RawEvent.objects.count() == 50
    assert list(EventBatch.objects.values_list("batch_id", flat=True)) == ["batch-12-0"]
    assert Rollup.objects.count() == rollups_before


@pytest.mark.django_db
def test_the_retention_task_runs_the_service(environment: Environment) -> None:
    from analytics.tasks import purge_expired_events

    assert purge_expired_events.apply().get() == 0
