"""Guardrail calibration: false rollbacks and power of the rollout checks, measured.

Replays rollouts on the simulator's light path (rollouts.simulation.run_light: the traffic
model summed per account over the current stage's window, then the server's own
``evidence_from_stage`` and ``decide`` at every check), thousands of times, over two worker
processes. Three tables, each row PASS, FAIL or INFO (a figure without a rule):

1. False rollbacks of healthy rollouts (no regression), per configuration: checks every 5 and
   15 minutes and hourly, base error rates 0.2 % and 5 %, heterogeneous account traffic, a
   shared incident in each stage (errors up 5 points for everyone for 4 hours, the flag
   innocent), a dark launch before the plan, and a plan retried after an aborted first attempt.
   Rule: PASS when the measured rate (the point estimate) is at or under the configured
   false-positive rate (5 %); the Wilson 95 % interval is printed beside it.
2. Power: flag-on error rate 1.5x, 2x, 3x and 5x the base rate, for every account ("global")
   or for a random 3 % of accounts ("3 % cohort"). "Caught": rolled back, or held short of
   100 % with people alerted (no stage serving 100 % ever started by the end of the run, twice
   the plan's bake time, and a hold alerted). Rules: global 2x caught in >= 95 % of runs; 1.5x
   (on the yellow line, short of red) rolled back in no more runs than the
   configured false-positive rate (5 %). Other rows are INFO. An alert is any hold that tells
   people: a guardrail beyond its yellow line, or a stage overdue with a guardrail still unable
   to clear the red line.
3. The seed incident (scenario ``pdf-engine``: 3 % of 12,000 accounts fail 90 % of their
   requests on the new engine): rolled back with <= 600 accounts ever exposed in >= 95 % of the
   seeds (a seed that is not rolled back counts against it). Then a few full replays through
   the real plan, SDK, events endpoint and check task (rollouts.simulation.run_full), when a
   database is reachable, each PASS when rolled back with <= 600 accounts exposed.

Every run uses the scenario defaults (12,000 accounts, 3,000 requests an hour, stages 5, 25, 50
and 100 % of 24 hours each, 15-minute checks, configured false-positive rate 5 %) with base
error rate 0.2 % (the seed incident's) unless the row says otherwise, and seeds 1..N.

    .venv/bin/python bench/guardrail_calibration.py            # the full tables (<= 10 min)
    .venv/bin/python bench/guardrail_calibration.py --quick    # a smaller smoke run
    .venv/bin/python bench/guardrail_calibration.py --tables power,seed   # some tables only

Environment: BENCH_DATABASE_URL for the full replays (default
postgres://postgres@127.0.0.1:5432/flagsite_calibration_bench, a database of its own; the
replays are skipped when it cannot be reached).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

# One BLAS thread per process: two worker processes share two cores, and a BLAS call that
# wakes its own threads costs more than the small products it computes here.
for _name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_name, "1")

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "sdk" / "python")]
os.environ.setdefault("FLAGSITE_ENV", "test")
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "flagsite.settings")
os.environ["DATABASE_URL"] = os.environ.get(
    "BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/flagsite_calibration_bench"
)
os.environ.setdefault("FLAGSITE_REDIS_PREFIX", "calibration-bench")
# A plan that would tell nobody of a rollback cannot start: the full replays' plans tell an ops
# address of the bench's own, whose messages stay in memory (Django's locmem mail backend).
os.environ.setdefault("OPS_EMAILS", "calibration-bench@localhost")
os.environ.setdefault("EMAIL_URL", "memorymail://")

import django  # noqa: E402

django.setup()

import numpy as np  # noqa: E402

from rollouts.simulation import (  # noqa: E402
    SCENARIOS,
    Scenario,
    account_buckets,
    run_full,
    run_light,
    summarise,
    wilson,
)

BUDGET_SECONDS = 600.0
EXPOSED_LIMIT = 600  # the seed incident's limit on accounts exposed at rollback
SEED_SHARE = 0.95
POWER_CAUGHT = 0.95
BASE: dict[str, Any] = {"traffic_per_hour": 3000, "base_error_rate": 0.002}
STAGE_NAMES = ("5%", "25%", "50%", "100%")
TABLES = ("false", "power", "seed", "full")

Row = tuple[str, dict[str, Any]]

FALSE_ROLLBACK_ROWS: list[Row] = [
    *(
        (f"{label} checks, base errors {base:g} %", {"check_minutes": minutes,
                                                     "base_error_rate": base / 100})
        for base in (0.2, 5.0)
        for label, minutes in (("5-minute", 5.0), ("15-minute", 15.0), ("hourly", 60.0))
    ),
    ("heterogeneous accounts (traffic sigma 2, errors sigma 1)", dict(SCENARIOS["heterogeneous"])),
    *(
        (f"shared incident in stage {k} ({STAGE_NAMES[k - 1]}): +5 points for 4 h",
         {"incident_stage": k})
        for k in range(1, 5)
    ),
    ("dark launch: served off to everyone for 48 h before", {"dark_hours": 48.0}),
    ("retried: first attempt aborted after 23.5 h at 5 %", {"retry_hours": 23.5}),
]  # fmt: skip

POWER_ROWS: list[tuple[float, str, dict[str, Any]]] = [
    (ratio, who, {"fail_share": share, "fail_rate": 0.0, "error_ratio": ratio})
    for ratio in (1.5, 2.0, 3.0, 5.0)
    for who, share in (("global", 1.0), ("3 % cohort", 0.03))
]


def _work(task: tuple[dict[str, Any], int]) -> dict[str, Any]:
    """One light run (in a worker process): what the tables read of it."""
    fields, seed = task
    result = run_light(Scenario.from_dict({**fields, "seed": seed}))
    keep = ("outcome", "stage", "accounts_exposed", "regression_to_rollback_seconds", "caught",
            "reached_full", "hours", "checks")  # fmt: skip
    out = {k: result[k] for k in keep}
    out["reason"] = result["reasons"][0] if result["reasons"] else ""
    return out


class Bench:
    def __init__(self, pool: Any, chunk: int) -> None:
        self.pool = pool
        self.chunk = chunk
        self.verdicts: list[tuple[str, str]] = []

    def runs(self, fields: dict[str, Any], n: int) -> tuple[list[dict[str, Any]], float]:
        started = time.monotonic()
        tasks = [({**BASE, **fields}, seed) for seed in range(1, n + 1)]
        results = list(self.pool.imap(_work, tasks, chunksize=self.chunk))
        return results, time.monotonic() - started

    def verdict(self, name: str, status: str) -> str:
        self.verdicts.append((name, status))
        return status


def _pct(value: float) -> str:
    return f"{100 * value:5.1f}%"


def _interval(bounds: tuple[float, float]) -> str:
    return f"{100 * bounds[0]:4.1f}-{100 * bounds[1]:4.1f}%"


def _minutes(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds / 60:6.0f} min"


def _print_table(header: list[str], widths: list[int]) -> Callable[[Iterable[object]], None]:
    def line(cells: Iterable[object]) -> None:
        print("  ".join(str(c).ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip())

    line(header)
    line("-" * w for w in widths)
    return line


def false_rollbacks(bench: Bench, n: int) -> None:
    print(f"\n1. False rollbacks of healthy rollouts ({n} runs per row; rule: rate <= "
          "configured, on the point estimate)")  # fmt: skip
    line = _print_table(
        ["configuration", "runs", "rollbacks", "rate", "95% interval", "configured",
         "completed", "held", "wall", "verdict"],
        [56, 5, 9, 6, 12, 10, 9, 5, 6, 7],
    )  # fmt: skip
    for name, fields in FALSE_ROLLBACK_ROWS:
        results, wall = bench.runs(fields, n)
        configured = Scenario.from_dict({**BASE, **fields}).false_positive_rate
        s = summarise(results, configured)
        status = bench.verdict(
            f"false rollbacks: {name}", "PASS" if s["rollback_rate"] <= configured else "FAIL"
        )
        line([name, s["runs"], s["rolled_back"], _pct(s["rollback_rate"]),
              _interval(s["rollback_rate_95"]), _pct(configured), s["completed"], s["held"],
              f"{wall:4.0f}s", status])  # fmt: skip
        if status == "FAIL":
            _why(results)


def _why(results: list[dict[str, Any]]) -> None:
    """The reasons of a few rollbacks and the stages they happened in, for whoever tunes."""
    rolled = [r for r in results if r["outcome"] == "rolled_back"]
    stages: dict[int, int] = {}
    for r in rolled:
        stages[r["stage"]] = stages.get(r["stage"], 0) + 1
    where = ", ".join(f"stage {k + 1}: {v}" for k, v in sorted(stages.items()))
    print(f"      rollbacks by stage: {where}")
    for r in rolled[:3]:
        print(f"      e.g. {r['reason'][:150]}")


def power(bench: Bench, n: int, configured: float) -> None:
    print(f"\n2. Power ({n} runs per row; caught = rolled back, or held short of 100 % with an "
          "alert; served 100% = the regression reached everyone)")  # fmt: skip
    line = _print_table(
        ["true error-rate ratio", "runs", "caught", "95% interval", "rolled back",
         "95% interval", "served 100%", "median accounts", "median time", "wall", "verdict"],
        [22, 5, 7, 12, 11, 12, 11, 15, 11, 6, 7],
    )  # fmt: skip
    for ratio, who, fields in POWER_ROWS:
        results, wall = bench.runs(fields, n)
        s = summarise(results, configured)
        if ratio == 2.0 and who == "global":
            rule, ok = "caught >= 95%", s["caught_rate"] >= POWER_CAUGHT
        elif ratio == 1.5:
            rule, ok = "rolled back <= configured", s["rollback_rate"] <= configured
        else:
            rule, ok = "", None
        status = "INFO" if ok is None else ("PASS" if ok else "FAIL")
        if ok is not None:
            bench.verdict(f"power: {ratio:g}x {who} ({rule})", status)
        median = s["median_accounts_exposed_at_rollback"]
        line([f"{ratio:g}x {who}", s["runs"], _pct(s["caught_rate"]),
              _interval(s["caught_rate_95"]), _pct(s["rollback_rate"]),
              _interval(s["rollback_rate_95"]), _pct(s["reached_full"] / s["runs"]),
              "-" if median is None else f"{median:g}",
              _minutes(s["median_regression_to_rollback_seconds"]), f"{wall:4.0f}s",
              status])  # fmt: skip
    print("   (median accounts: ever served flag-on, at rollback; median time: from the first "
          "request the new code hurt to the rollback; over the runs rolled back)")  # fmt: skip


def seed_incident(bench: Bench, n: int) -> None:
    print(f"\n3. The seed incident (pdf-engine) over {n} seeds (rule: rolled back with <= "
          f"{EXPOSED_LIMIT} accounts exposed in >= {SEED_SHARE:.0%} of seeds)")  # fmt: skip
    results, wall = bench.runs(dict(SCENARIOS["pdf-engine"]), n)
    within = sum(
        1 for r in results
        if r["outcome"] == "rolled_back" and r["accounts_exposed"] <= EXPOSED_LIMIT
    )  # fmt: skip
    rolled = [r for r in results if r["outcome"] == "rolled_back"]
    exposed = np.array([r["accounts_exposed"] for r in rolled] or [0])
    minutes = np.array([(r["regression_to_rollback_seconds"] or 0) / 60 for r in rolled] or [0])
    low, high = wilson(within, n)
    status = bench.verdict(
        "seed incident: <= 600 accounts in >= 95% of seeds",
        "PASS" if within >= SEED_SHARE * n else "FAIL",
    )
    stages = sorted({r["stage"] for r in rolled})
    print(
        f"   rolled back: {len(rolled)} of {n} (in stage {', '.join(str(s + 1) for s in stages)})"
    )
    print(f"   accounts exposed at rollback: median {np.median(exposed):g}, 90th percentile "
          f"{np.percentile(exposed, 90):g}, 95th {np.percentile(exposed, 95):g}, "
          f"max {exposed.max():g}")  # fmt: skip
    print(f"   regression to rollback: median {np.median(minutes):.0f} min, 95th percentile "
          f"{np.percentile(minutes, 95):.0f} min")  # fmt: skip
    print(f"   within {EXPOSED_LIMIT} accounts: {within} of {n} = {within / n:.1%} "
          f"(95% interval {_interval((low, high))})  [{wall:.0f}s]  {status}")  # fmt: skip


def full_replays(bench: Bench, n: int) -> None:
    print(f"\n   Full replays through the server (run_full), seeds 1..{n}:")
    if n <= 0:
        print("   skipped (--full 0)")
        return
    try:
        from django.core.management import call_command
        from django.db import connection

        call_command("ensure_database", verbosity=0)
        call_command("migrate", verbosity=0)
        connection.ensure_connection()
    except Exception as exc:
        print(f"   SKIP: no database ({type(exc).__name__}: {str(exc).splitlines()[0][:120]})")
        return
    # The check task logs every pass at INFO: thousands of lines that would bury the table.
    logging.disable(logging.INFO)
    for seed in range(1, n + 1):
        started = time.monotonic()
        try:
            result = run_full(Scenario.from_dict({**SCENARIOS["pdf-engine"], "seed": seed}))
        except Exception as exc:
            status = bench.verdict(f"full replay seed {seed}", "FAIL")
            print(f"   seed {seed}: {type(exc).__name__}: {exc}  {status}")
            continue
        ok = result["outcome"] == "rolled_back" and result["accounts_exposed"] <= EXPOSED_LIMIT
        status = bench.verdict(f"full replay seed {seed}", "PASS" if ok else "FAIL")
        seconds = result["regression_to_rollback_seconds"]
        print(f"   seed {seed}: {result['outcome']}, {result['accounts_exposed']} accounts "
              f"exposed, regression to rollback {_minutes(seconds).strip()}, "
              f"{result['checks']} checks, {time.monotonic() - started:.1f} s of wall time  "
              f"{status}")  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a smaller smoke run")
    parser.add_argument("--runs", type=int, help="healthy runs per false-rollback row (1000)")
    parser.add_argument("--power-runs", type=int, help="runs per power row (200)")
    parser.add_argument("--seeds", type=int, help="seeds of the seed incident (200)")
    parser.add_argument("--full", type=int, help="full replays through the server (3)")
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument(
        "--tables", default=",".join(TABLES),
        help=f"which tables, comma-separated ({','.join(TABLES)}); the runtime budget is "
        "judged on a full run of all of them",
    )  # fmt: skip
    args = parser.parse_args()
    tables = {t.strip() for t in args.tables.split(",") if t.strip()}
    if not tables <= set(TABLES):
        parser.error(f"--tables: choose from {', '.join(TABLES)}")
    quick = args.quick
    runs = args.runs or (100 if quick else 1000)
    power_runs = args.power_runs or (40 if quick else 200)
    seeds = args.seeds or (40 if quick else 200)
    full = args.full if args.full is not None else (1 if quick else 3)
    command = " ".join(["python", "bench/guardrail_calibration.py", *sys.argv[1:]])
    print(f"Guardrail calibration: {command}")
    print(f"(light path over {args.processes} processes; base configuration {BASE}, other "
          "fields at the Scenario defaults)")  # fmt: skip
    started = time.monotonic()
    import multiprocessing

    # Fork: the workers start with Django set up and the account buckets hashed. No database
    # connection is open yet (the full replays run after the pool is closed).
    account_buckets(Scenario().accounts)
    context = multiprocessing.get_context("fork")
    with context.Pool(args.processes) as pool:
        bench = Bench(pool, chunk=4)
        if "false" in tables:
            false_rollbacks(bench, runs)
        if "power" in tables:
            power(bench, power_runs, Scenario().false_positive_rate)
        if "seed" in tables:
            seed_incident(bench, seeds)
    if "full" in tables:
        full_replays(bench, full)
    elapsed = time.monotonic() - started
    if not quick and tables == set(TABLES):
        budget = "PASS" if elapsed <= BUDGET_SECONDS else "FAIL"
        bench.verdict(f"runtime {elapsed:.0f} s <= {BUDGET_SECONDS:.0f} s", budget)
    failed = [name for name, status in bench.verdicts if status == "FAIL"]
    passed = sum(1 for _, status in bench.verdicts if status == "PASS")
    print(f"\nTotal: {elapsed:.0f} s of wall time (budget {BUDGET_SECONDS:.0f} s for the full "
          f"run). {passed} PASS, {len(failed)} FAIL.")  # fmt: skip
    for name in failed:
        print(f"  FAIL: {name}")
    print(f"Reproduce: {command}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
