"""The scheduled check makes the same, small number of queries whatever the event volume.

Not a timing test: bench/rollout_checks.py times the pass. Here a rollout is checked with a few
rollup rows, then again with ten times the rows and twenty times the counts; the queries of
the two passes are counted and compared.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from analytics.models import Rollup
from analytics.stats.histogram import N_BUCKETS
from rollouts import services
from rollouts.models import RolloutPlan
from tests.integration.rollouts.conftest import World

pytestmark = [pytest.mark.integration, pytest.mark.django_db]

# lock, stages, guardrails, rollups, last sequence, plan update, check insert, synchronous_commit
MAX_QUERIES_PER_CHECK = 8


def rollups(world: World, start: datetime, minutes: int, every: int, scale: int) -> None:
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
    few, verdict_few = queries_of_a_pass(plan, now)
    rollups(world, start, minutes=120, every=1, scale=20)  # 960 rows, 20x the counts
    many, verdict_many = queries_of_a_pass(plan, now + timedelta(minutes=1))

    assert (verdict_few, verdict_many) == ("hold", "hold")
    assert few == many
    assert few <= MAX_QUERIES_PER_CHECK
