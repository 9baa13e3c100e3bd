"""The scheduled check makes the same, small number of queries whatever the event volume.

Not a timing test: bench/rollout_checks.py times the pass. Here a rollout is checked with a few
rollup rows, then again with ten times the rows and twenty times the counts; the queries of
the two passes are counted and compared, each with nothing kept from an earlier pass, then the
next pass (which reuses the looks kept: analytics.look_cache) and a pass after a kept look's rows
changed (one more query: it reads every histogram again).
"""

from __future__ import annotations

import uuid
from contextlib import AbstractContextManager
from datetime import datetime, timedelta
from typing import Any

import pytest
from django.conf import settings
from django.db import connection
from django.db.models import F
from django.test import override_settings
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from analytics.models import Rollup
from analytics.stats.histogram import N_BUCKETS
from rollouts import services
from rollouts.models import RolloutPlan
from tests.integration.rollouts.conftest import World

pytestmark = [pytest.mark.integration, pytest.mark.django_db]

# lock, stages, guardrails, the stage's units (raw events), its latency rollups, plan update,
# check insert, synchronous_commit
MAX_QUERIES_PER_CHECK = 8


def nothing_kept() -> AbstractContextManager[Any]:
    """An empty cache of kept looks, as after a Redis restart."""
    empty = {
        "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
        "LOCATION": uuid.uuid4().hex,
    }
    return override_settings(CACHES={**settings.CACHES, "rollup_looks": empty})


def rollups(
    world: World, start: datetime, minutes: int, every: int, scale: int, replace: bool = True
) -> None:
    """Equal rates in both arms (the off arm has 19 times the on arm's counts), so each check
    holds for the stage's bake time whatever the volume."""
    histogram = [0] * N_BUCKETS
    histogram[80], histogram[90] = 60, 40
    rows = []
    for minute in range(0, minutes, every):
        for variant, times in (("on", scale), ("off", 19 * scale)):
            for metric, users, events in (
                ("exposure", 5, 5), ("error", 1, 1), ("conversion", 1, 5), ("latency", 0, 100),
            ):  # fmt: skip
                rows.append(
                    Rollup(
                        environment=world.env, flag_key=world.state.flag.key, variant=variant,
                        metric=metric, bucket_start=start + timedelta(minutes=minute),
                        users=users * times, events=events * times,
                        histogram=[c * times for c in histogram] if metric == "latency" else None,
                    )
                )  # fmt: skip
    if replace:
        Rollup.objects.filter(environment=world.env).delete()
    Rollup.objects.bulk_create(rows)


def queries_of_a_pass(plan: RolloutPlan, now: datetime) -> tuple[int, str]:
    RolloutPlan.objects.filter(pk=plan.pk).update(next_check_at=now)
    with CaptureQueriesContext(connection) as queries:
        done = services.check_due(now)
    assert [record.plan_id for record in done] == [plan.pk]
    # Savepoints stand in for the check's transaction inside the test's; the pass's one query
    # for the due plans is not the check's.
    statements = [q["sql"] for q in queries.captured_queries if "SAVEPOINT" not in q["sql"]]
    return len(statements) - 1, done[0].verdict


def test_queries_per_check_do_not_grow_with_the_event_volume(world: World) -> None:
    start = timezone.now().replace(second=0, microsecond=0) - timedelta(hours=2)
    plan = services.create_from_template(world.state, template="standard", user=world.manager)
    plan = services.start(plan, user=world.manager, reason="ship it", now=start)
    now = start + timedelta(hours=2)

    rollups(world, start, minutes=120, every=10, scale=1)  # 96 rows
    with nothing_kept():
        few, verdict_few = queries_of_a_pass(plan, now)
    rollups(world, start, minutes=120, every=1, scale=20)  # 960 rows, 20x the counts
    with nothing_kept():
        many, verdict_many = queries_of_a_pass(plan, now + timedelta(minutes=1))
        # The next minutes of traffic, then the next pass: the looks kept are reused.
        rollups(world, now, minutes=10, every=1, scale=20, replace=False)
        later = now + timedelta(minutes=11)
        steady, verdict_steady = queries_of_a_pass(plan, later)
        # A late event in a kept look: this pass reads every histogram again.
        Rollup.objects.filter(environment=world.env, metric="latency").update(
            events=F("events") + 1
        )
        changed, _ = queries_of_a_pass(plan, later + timedelta(minutes=1))

    assert (verdict_few, verdict_many, verdict_steady) == ("hold", "hold", "hold")
    assert few == many == steady
    assert few <= MAX_QUERIES_PER_CHECK
    assert changed == few + 1
