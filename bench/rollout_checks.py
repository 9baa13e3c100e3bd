"""Rollout-check benchmark: one beat pass over N running rollouts with a day of rollups each.

Prints the time per pass (target < 10 s for 500 rollouts) and the queries per rollout, measured
at two event volumes (the same rollup rows with 1x and 100x the counts) to show the number of
queries does not depend on the volume. Baseline, measured in the same run: one
``analytics.services.compare_flag`` per rollout (the analytics core's own read and statistics).

    .venv/bin/python bench/rollout_checks.py [--rollouts 500] [--bucket-minutes 5]

Environment: BENCH_DATABASE_URL (default postgres://postgres@127.0.0.1:5432/flagsite_ro_bench).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "sdk" / "python")]
os.environ.setdefault("FLAGSITE_ENV", "test")
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "flagsite.settings")
os.environ["DATABASE_URL"] = os.environ.get(
    "BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/flagsite_ro_bench"
)
os.environ.setdefault("FLAGSITE_REDIS_PREFIX", "ro-bench")
TARGET_SECONDS = 10.0


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rollouts", type=int, default=500)
    parser.add_argument("--bucket-minutes", type=int, default=5)
    args = parser.parse_args()

    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    call_command("ensure_database", verbosity=0)
    call_command("migrate", verbosity=0)
    from django.contrib.auth.models import User

    from analytics.models import Rollup
    from analytics.selectors import Window
    from analytics.services import compare_flag
    from analytics.stats.histogram import N_BUCKETS, bucket_index
    from flags import services as flag_services
    from flags.models import Environment, FlagState
    from rollouts import services
    from rollouts.models import RolloutPlan

    system = flag_services.Actor.automation("bench")
    boss = User.objects.filter(username="bench-boss").first() or User.objects.create_superuser(
        "bench-boss", password="x-unused-x"
    )
    tag = str(int(time.time()))
    project = flag_services.create_project(
        key=f"bench-{tag}", name="bench", actor=system, source="system", reason="bench"
    )
    env = Environment.objects.get(project=project, key="development")
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    start = now - timedelta(days=1)
    rng = np.random.default_rng(1)
    hist = np.bincount(bucket_index(100 * np.exp(rng.normal(0, 0.5, 200))), minlength=N_BUCKETS)
    buckets = [start + timedelta(minutes=m) for m in range(0, 24 * 60, args.bucket_minutes)]
    t0 = time.perf_counter()
    plans = []
    for i in range(args.rollouts):
        flag = flag_services.create_flag(
            project, data={"key": f"f{i}", "name": f"f{i}"}, actor=system, source="system"
        )
        state = FlagState.objects.get(flag=flag, environment=env)
        plan = services.create_from_template(state, template="standard", user=boss)
        plans.append(plan)
        rows = []
        for variant, share in (("on", 5), ("off", 95)):
            for at in buckets:
                for metric, users, events in (
                    ("exposure", share, share), ("error", 0, share // 5 + 1),
                    ("conversion", share // 10, share // 5 + 1), ("latency", 0, int(hist.sum())),
                ):  # fmt: skip
                    rows.append(
                        Rollup(
                            environment=env, flag_key=flag.key, variant=variant, metric=metric,
                            bucket_start=at, users=users, events=events,
                            histogram=hist.tolist() if metric == "latency" else None,
                        )
                    )  # fmt: skip
        Rollup.objects.bulk_create(rows, batch_size=5000)
    setup = time.perf_counter() - t0
    # Start every plan a day ago, as the admin would, then make them all due.
    for plan in plans:
        services.start(plan, user=boss, reason="bench", now=start)
    RolloutPlan.objects.filter(pk__in=[p.pk for p in plans]).update(next_check_at=now)

    window = Window(start, now)
    t0 = time.perf_counter()
    for plan in plans:
        compare_flag(env.pk, plan.flag_state.flag.key, window)
    baseline = time.perf_counter() - t0

    with CaptureQueriesContext(connection) as queries:
        t0 = time.perf_counter()
        done = services.check_due(now)
        elapsed = time.perf_counter() - t0
    per_rollout = len(queries) / max(1, len(done))

    # 100x the volume in the same rows: the queries per check must not change.
    Rollup.objects.filter(environment=env).update(users=100, events=1000)
    later = now + timedelta(hours=1)
    RolloutPlan.objects.filter(pk__in=[p.pk for p in plans]).update(next_check_at=later)
    with CaptureQueriesContext(connection) as queries_100x:
        done_100x = services.check_due(later)
    per_rollout_100x = len(queries_100x) / max(1, len(done_100x))

    print(f"setup: {args.rollouts} rollouts, {len(buckets)} rollup buckets/day each, {setup:.1f} s")
    print(f"one beat pass: {len(done)} rollouts checked in {elapsed:.2f} s "
          f"({elapsed / max(1, len(done)) * 1000:.1f} ms per rollout); "
          f"target < {TARGET_SECONDS} s: "
          f"{'PASS' if elapsed < TARGET_SECONDS else 'FAIL'}")  # fmt: skip
    print(f"baseline, compare_flag for each rollout: {baseline:.2f} s; pass / baseline = "
          f"{elapsed / baseline:.2f}")  # fmt: skip
    print(f"queries per rollout: {per_rollout:.1f} at 1x volume, {per_rollout_100x:.1f} at 100x "
          f"({'bounded' if per_rollout_100x == per_rollout else 'NOT bounded'})")  # fmt: skip


if __name__ == "__main__":
    main()
