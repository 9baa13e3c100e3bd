"""Rollout-check benchmark: one beat pass over N running rollouts with a day of rollups each.

Each rollout serves its first stage (5 %) to a flag whose rollups cover the day since it
started: one row per bucket (5 minutes by default), variant (on, off) and metric (exposure,
error, conversion, latency with a histogram), rates equal in both arms. The stages bake for
48 hours, so every check of the pass holds, as nearly every check does (a rollout changes stage
once per bake time). The pass (``rollouts.services.check_due``) runs at 1x, 10x and 100x the
event volume: the same rows with 10 and 100 times the counts, which is what more traffic does
once every bucket has some. At each volume it runs twice: cold (nothing kept from an earlier
pass: the first pass after the cache was emptied, e.g. a Redis restart) and then, after one more
bucket of rollups has arrived, the next pass, as every pass of a running deployment is (it
reuses the looks the cold pass kept: analytics.look_cache). Printed per pass: its time, ms and
queries per rollout, and the verdicts; then the target (a pass under 10 s, the same number of
queries at every volume), and baselines measured in the same run: one
``analytics.services.compare_flag`` per rollout, one database round trip, and the row-by-row
read of the rollups (the path on SQLite). Last, the cost of a check that moves to the next
stage (a flag write).

    .venv/bin/python bench/rollout_checks.py [--rollouts 500] [--bucket-minutes 5]

Environment: BENCH_DATABASE_URL (default postgres://postgres@127.0.0.1:5432/flagsite_ro_bench;
a database of its own: rollups and running plans left by earlier runs are removed), REDIS_URL.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

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
PREFIX = "ro-bench-"
FLAGS_PER_PROJECT = 50
VOLUMES = (1, 10, 100)
SHAPES = 16  # distinct latency histograms, picked per bucket
ON_USERS = 5  # new users per bucket in the on arm at 1x (the off arm: 19 times as many)

# One row per (flag, bucket, variant, metric), its counts from one of the SHAPES buckets of
# traffic (bench_shapes: per shape and arm, already scaled to the volume).
INSERT = """
INSERT INTO analytics_rollup
    (environment_id, flag_key, variant, metric, bucket_start, users, events, value_sum, histogram)
SELECT f.env, f.key, s.variant, m.metric, b.at,
       CASE m.metric WHEN 'exposure' THEN s.users WHEN 'latency' THEN 0 ELSE s.users / 5 END,
       CASE m.metric WHEN 'exposure' THEN s.users WHEN 'error' THEN s.errors
                     WHEN 'conversion' THEN s.conversions ELSE s.requests END,
       0.0,
       CASE WHEN m.metric = 'latency' THEN s.histogram END
FROM unnest(%(envs)s::int[], %(flags)s::text[]) AS f(env, key)
CROSS JOIN generate_series(%(start)s::timestamptz, %(last)s::timestamptz, %(step)s::interval)
    AS b(at)
JOIN bench_shapes AS s ON s.k = abs(hashtext(f.key || b.at::text)) %% %(shapes)s
CROSS JOIN (VALUES ('exposure'), ('error'), ('conversion'), ('latency')) AS m(metric)
"""


def setup_django() -> None:
    import django

    django.setup()
    from django.core.management import call_command

    call_command("ensure_database", verbosity=0)
    call_command("migrate", verbosity=0)


def retire_earlier_runs() -> None:
    from django.db import connection

    from analytics.models import Rollup
    from rollouts.models import RolloutPlan

    earlier = {"environment__project__key__startswith": PREFIX}
    if Rollup.objects.exclude(**earlier).exists():
        Rollup.objects.filter(**earlier).delete()
    else:  # only rows of earlier runs
        with connection.cursor() as cursor:
            cursor.execute(f"TRUNCATE {Rollup._meta.db_table}")
    RolloutPlan.objects.filter(
        status__in=RolloutPlan.ACTIVE, flag_state__environment__project__key__startswith=PREFIX
    ).update(status=RolloutPlan.Status.ABORTED)


def create_rollouts(count: int, start: datetime) -> list[Any]:
    """``count`` running rollouts, FLAGS_PER_PROJECT flags to a project (every flag write
    rebuilds its environment's ruleset, so one project of 500 flags makes setup quadratic)."""
    from django.contrib.auth.models import User

    from flags import services as flag_services
    from flags.models import Environment, FlagState
    from rollouts import services
    from rollouts.models import RolloutPlan
    from rollouts.plan_templates import DAY, TEMPLATES, StageTemplate

    system = flag_services.Actor.automation("bench")
    boss = User.objects.filter(username="bench-boss").first() or User.objects.create_superuser(
        "bench-boss", password="x-unused-x"
    )
    stages = [StageTemplate(s.name, s.weight, 2 * DAY) for s in TEMPLATES["standard"][1]]
    plans: list[Any] = []
    tag = int(time.time())
    for i in range(count):
        if i % FLAGS_PER_PROJECT == 0:
            project = flag_services.create_project(
                key=f"{PREFIX}{tag}-{i // FLAGS_PER_PROJECT}", name="bench", actor=system,
                source="system", reason="bench",
            )  # fmt: skip
            env = Environment.objects.get(project=project, key="development")
        flag = flag_services.create_flag(
            project, data={"key": f"f{i}", "name": f"f{i}"}, actor=system, source="system"
        )
        state = FlagState.objects.get(flag=flag, environment=env)
        plan = services.create_from_template(
            state, template="", stages=stages, user=boss, email_recipients=["ops@bench.test"]
        )
        plans.append(services.start(plan, user=boss, reason="bench", now=start))
    running = RolloutPlan.objects.filter(pk__in=[p.pk for p in plans], status="running")
    assert running.count() == count
    return plans


def traffic_shapes(scale: int) -> list[tuple[int, str, int, int, int, int, list[int]]]:
    """Per shape and arm: new users, requests, errors, conversions and the latency histogram
    of one bucket. The on arm's bucket at 1x is 5 users and 100 requests (about 1 % errors,
    5 % conversions); the off arm has 19 times each count, so the arms' rates are equal."""
    from analytics.stats.histogram import histogram_of

    rng = np.random.default_rng(7)
    shapes = []
    for k in range(SHAPES):
        histogram = histogram_of(80 * np.exp(rng.normal(0, 0.5, 100)))
        errors, conversions = int(rng.integers(0, 3)), int(rng.integers(3, 8))
        for variant, times in (("on", 1), ("off", 19)):
            n = times * scale
            shapes.append((k, variant, ON_USERS * n, 100 * n, errors * n, conversions * n,
                           (histogram * n).tolist()))  # fmt: skip
    return shapes


def write_rollups(plans: list[Any], start: datetime, now: datetime, minutes: int,
                  scale: int, replace: bool = True) -> int:  # fmt: skip
    """Rollups of every bucket in [start, now) at ``scale`` (replacing the earlier ones, or
    ``replace=False``: adding to them, as the next buckets of traffic)."""
    from django.db import connection

    from analytics.models import Rollup

    envs = [p.flag_state.environment_id for p in plans]
    with connection.cursor() as cursor:
        if replace and Rollup.objects.exclude(environment_id__in=set(envs)).exists():
            Rollup.objects.filter(environment_id__in=set(envs)).delete()
        elif replace:  # only this run's rows: no dead rows left to vacuum
            cursor.execute(f"TRUNCATE {Rollup._meta.db_table}")
        cursor.execute(
            "CREATE TEMP TABLE IF NOT EXISTS bench_shapes (k int, variant text, users bigint,"
            " requests bigint, errors bigint, conversions bigint, histogram bigint[])"
        )
        cursor.execute("TRUNCATE bench_shapes")
        cursor.executemany(
            "INSERT INTO bench_shapes VALUES (%s, %s, %s, %s, %s, %s, %s)", traffic_shapes(scale)
        )
        cursor.execute(INSERT, {
            "envs": envs, "flags": [p.flag_state.flag.key for p in plans], "start": start,
            "step": f"{minutes} minutes", "last": now - timedelta(minutes=minutes),
            "shapes": SHAPES,
        })  # fmt: skip
        rows: int = cursor.rowcount
        # As in a steady state: statistics current, visibility map and hint bits set.
        cursor.execute("VACUUM ANALYZE analytics_rollup")
    return rows


def empty_the_kept_looks(tag: str) -> None:
    """A cache with nothing in it, as after a Redis restart: a key prefix no pass used yet."""
    from django.core.cache import caches

    from analytics.look_cache import CACHE_ALIAS

    caches[CACHE_ALIAS].key_prefix = f"ro-bench-looks-{time.time_ns()}-{tag}"


class QueryCounter:
    """Counts every query through Django's connection (no query log: it costs time itself)."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(self, execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        self.count += 1
        return execute(sql, params, many, context)


def one_pass(plans: list[Any], now: datetime) -> tuple[float, int, Counter[str], int]:
    from django.db import connection

    from rollouts import services
    from rollouts.models import RolloutPlan

    RolloutPlan.objects.filter(pk__in=[p.pk for p in plans]).update(next_check_at=now)
    counter = QueryCounter()
    with connection.execute_wrapper(counter):
        t0 = time.perf_counter()
        done = services.check_due(now)
        elapsed = time.perf_counter() - t0
    return elapsed, len(done), Counter(r.verdict for r in done), counter.count


def baselines(plans: list[Any], now: datetime, sample: int) -> dict[str, float]:
    """Seconds per rollout of the analytics core's comparison, one round trip, and the
    rollups read in one query against row by row, all over the same windows as the pass."""
    from django.db import connection

    from analytics.look_totals import look_totals, look_totals_row_by_row
    from analytics.selectors import COMPARED_METRICS
    from analytics.services import compare_flag
    from rollouts.evidence import window_for

    windows = [
        (p.flag_state.environment_id, p.flag_state.flag.key, window_for(p.started_at, now))
        for p in plans
    ]

    def per_rollout(fn: Any, items: list[tuple[int, str, Any]]) -> float:
        t0 = time.perf_counter()
        for env, key, window in items:
            fn(env, key, window)
        return (time.perf_counter() - t0) / len(items)

    def rows(env: int, key: str, window: Any) -> Any:
        return look_totals_row_by_row(env, key, window, COMPARED_METRICS)

    def round_trip(env: int, key: str, window: Any) -> None:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")

    return {
        "compare_flag": per_rollout(lambda e, k, w: compare_flag(e, k, w), windows),
        "round_trip": per_rollout(round_trip, windows),
        "read_rows": per_rollout(rows, windows[:sample]),
        "read_sql": per_rollout(
            lambda e, k, w: look_totals(e, k, w, COMPARED_METRICS), windows[:sample]
        ),
    }


def progressing_checks(plans: list[Any], now: datetime) -> tuple[float, Counter[str]]:
    """A pass over rollouts whose bake is over: each check writes the next stage to its flag."""
    from rollouts.models import RolloutPlan

    RolloutPlan.objects.filter(pk__in=[p.pk for p in plans]).update(
        stage_started_at=now - timedelta(days=3)
    )
    elapsed, done, verdicts, _ = one_pass(plans, now)
    return elapsed / max(1, done), verdicts


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rollouts", type=int, default=500)
    parser.add_argument("--bucket-minutes", type=int, default=5)
    parser.add_argument("--progressing", type=int, default=10)
    args = parser.parse_args()
    setup_django()
    retire_earlier_runs()
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    start = now - timedelta(days=1)
    t0 = time.perf_counter()
    plans = create_rollouts(args.rollouts, start)
    created = time.perf_counter() - t0
    print(f"setup: {args.rollouts} rollouts created in {created:.1f} s; buckets of "
          f"{args.bucket_minutes} min over a day, 2 variants x 4 metrics")  # fmt: skip
    print(f"{'volume':>6} {'pass':>6} {'rows':>10} {'write s':>8} {'pass s':>7} "
          f"{'ms/rollout':>10} {'queries/rollout':>15}  verdicts")  # fmt: skip
    results: dict[tuple[int, str], tuple[float, float, int]] = {}
    base: dict[str, float] = {}
    step = timedelta(minutes=args.bucket_minutes)
    for scale in VOLUMES:
        t0 = time.perf_counter()
        rows = write_rollups(plans, start, now, args.bucket_minutes, scale)
        written = time.perf_counter() - t0
        empty_the_kept_looks(f"{scale}x")
        passes = [("cold", now, rows, written)]
        for kind, at, count, seconds in passes:
            elapsed, done, verdicts, queries = one_pass(plans, at)
            results[(scale, kind)] = (elapsed, queries / max(1, done), done)
            print(f"{scale:>5}x {kind:>6} {count:>10,} {seconds:>8.1f} {elapsed:>7.2f} "
                  f"{elapsed / max(1, done) * 1000:>10.1f} {queries / max(1, done):>15.2f}  "
                  f"{dict(verdicts)}")  # fmt: skip
            if kind == "cold":  # the next bucket of traffic arrives, then the next pass runs
                t0 = time.perf_counter()
                more = write_rollups(plans, now, now + step, args.bucket_minutes, scale, False)
                passes.append(("next", now + step, rows + more, time.perf_counter() - t0))
        if scale == 1:
            base = baselines(plans, now, sample=min(50, len(plans)))
    report(results, base, args.rollouts)
    per_check, verdicts = progressing_checks(plans[: args.progressing], now)
    print(f"a check that moves to the next stage (flag write through the pipeline): "
          f"{per_check * 1000:.1f} ms ({dict(verdicts)}); "
          f"{per_check / (results[(1, 'next')][0] / results[(1, 'next')][2]):.1f}x a holding "
          "check")  # fmt: skip


def report(
    results: dict[tuple[int, str], tuple[float, float, int]], base: dict[str, float], n: int
) -> None:
    complete = all(done == n for _, _, done in results.values())
    counts = {round(per, 6) for _, per, _ in results.values()}
    for kind, label in (("next", "the next pass (steady state)"), ("cold", "a cold pass")):
        worst = max(elapsed for (_, k), (elapsed, _, _) in results.items() if k == kind)
        ok = worst < TARGET_SECONDS and complete
        print(f"target: {label} over {n} rollouts < {TARGET_SECONDS:.0f} s at every volume: "
              f"{'PASS' if ok else 'FAIL'} (slowest {worst:.2f} s)")  # fmt: skip
    print(f"queries per rollout the same at {'/'.join(f'{v}x' for v in VOLUMES)}, cold and next: "
          f"{'PASS (bounded)' if len(counts) == 1 else 'FAIL'}")  # fmt: skip
    for scale in VOLUMES:
        cold, steady = results[(scale, "cold")][0], results[(scale, "next")][0]
        print(f"{scale}x: the next pass takes {steady / cold:.2f}x the cold pass's time")
    check = results[(1, "next")][0] / results[(1, "next")][2]
    print(f"baselines, same run, 1x: compare_flag {base['compare_flag'] * 1000:.1f} ms per rollout"
          f" (a steady-state check is {check / base['compare_flag']:.2f}x one compare_flag); one "
          f"round trip {base['round_trip'] * 1000:.2f} ms (a check is "
          f"{check / base['round_trip']:.0f} round trips)")  # fmt: skip
    print(f"reading one rollout's rollups: {base['read_sql'] * 1000:.1f} ms in one query, "
          f"{base['read_rows'] * 1000:.1f} ms row by row (the SQLite path): "
          f"{base['read_rows'] / base['read_sql']:.1f}x")  # fmt: skip


if __name__ == "__main__":
    main()
