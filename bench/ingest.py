"""Ingest benchmark: events/s through POST /api/v1/events, production-served.

Starts gunicorn with uvicorn workers (flagsite/gunicorn.conf.py, flagsite.asgi) against a
PostgreSQL database of its own, then posts 1,000-event batches from concurrent httpx clients.
Prints events/s accepted and stored, per-batch latency p50/p99, and as a baseline the rate of the
same batches stored in-process (no HTTP, one thread).

    .venv/bin/python bench/ingest.py [--seconds 20] [--clients 6] [--workers 3]
        [--prefill 2000000]

Environment: BENCH_DATABASE_URL (default postgres://postgres@127.0.0.1:5432/flagsite_an_bench),
REDIS_URL (default redis://127.0.0.1:6379/5), FLAGSITE_REDIS_PREFIX (default "an").
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATABASE_URL = os.environ.get(
    "BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/flagsite_an_bench"
)
REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/5")
PREFIX = os.environ.get("FLAGSITE_REDIS_PREFIX", "an")
BATCH_SIZE = 1000
TARGET_EVENTS_PER_S = 20_000


def server_env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "FLAGSITE_ENV": "production",
            "SECRET_KEY": "bench-only-secret-key-not-for-production-use-0123456789",
            "ALLOWED_HOSTS": "127.0.0.1,localhost",
            "DATABASE_URL": DATABASE_URL,
            "REDIS_URL": REDIS_URL,
            "FLAGSITE_REDIS_PREFIX": PREFIX,
            "DJANGO_SETTINGS_MODULE": "flagsite.settings",
            "LOG_LEVEL": "WARNING",
            "FLAGSITE_RATE_EVENTS": "1000000/min",  # the bench is one key at full speed
            "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "sdk" / "python")]),
        }
    )
    return env


def setup_database() -> str:
    """Create and migrate the bench database; returns a fresh server API key."""
    os.environ.update(server_env())
    sys.path[:0] = [str(ROOT), str(ROOT / "sdk" / "python")]
    import psycopg

    name = DATABASE_URL.rsplit("/", 1)[1]
    admin_url = DATABASE_URL.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{name}"')
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    from analytics.models import EventBatch, FirstSeen, RawEvent, Rollup
    from apikeys.services import provision
    from flags.models import Environment, Project

    for model in (RawEvent, EventBatch, Rollup, FirstSeen):
        model.objects.all().delete()
    project, _ = Project.objects.get_or_create(key="bench", defaults={"name": "Bench"})
    environment, _ = Environment.objects.get_or_create(
        project=project, key="production", defaults={"name": "Production"}
    )
    _, raw = provision(environment=environment, kind="server", name="bench")
    return raw


def make_batch(rng: random.Random, batch_id: str, now: datetime) -> dict[str, object]:
    """A realistic mix: exposures of three flags, errors, latencies, conversions, custom."""
    events: list[dict[str, object]] = []
    for _ in range(BATCH_SIZE):
        user = f"user-{rng.randrange(200_000)}"
        at = (now - timedelta(seconds=rng.uniform(0, 600))).isoformat()
        assignments = {
            "checkout": "on" if hash(user) % 2 else "off",
            "banner": rng.choice(["a", "b"]),
            "search": "v2",
        }
        roll = rng.random()
        base: dict[str, object] = {"context_key": user, "timestamp": at, "assignments": assignments}
        if roll < 0.4:
            flag = rng.choice(list(assignments))
            events.append(base | {"type": "exposure", "flag": flag, "variant": assignments[flag]})
        elif roll < 0.45:
            events.append(base | {"type": "error"})
        elif roll < 0.85:
            events.append(base | {"type": "latency", "value": round(rng.lognormvariate(4, 1), 2)})
        elif roll < 0.95:
            events.append(base | {"type": "conversion", "value": 1})
        else:
            events.append(base | {"type": "custom", "name": "basket", "value": rng.randint(1, 9)})
    return {"batch_id": batch_id, "events": events}


def prefill_first_seen(environment_id: int, count: int) -> None:
    """A steady state rather than an empty table: ``count`` random sightings (none of them the
    bench's users, so every sighting the run sends is still new and inserted)."""
    from django.db import connection

    print(f"prefilling {count:,} first sightings...", flush=True)
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO analytics_firstseen (environment_id, sighting, first_seen_at) "
            "SELECT %s, (random() * 9.2e18)::bigint - 4.6e18::bigint, now() "
            "FROM generate_series(1, %s) ON CONFLICT DO NOTHING",
            [environment_id, count],
        )
        cursor.execute("VACUUM ANALYZE analytics_firstseen")


def baseline_in_process(bodies: list[bytes], environment_id: int) -> float:
    """Events/s of validation + storage in this process, without HTTP or concurrency."""
    from analytics import services

    start = time.perf_counter()
    for body in bodies:
        services.ingest(environment_id, json.loads(body))
    return len(bodies) * BATCH_SIZE / (time.perf_counter() - start)


async def client_loop(
    client: httpx.AsyncClient, key: str, bodies: list[bytes], deadline: float, out: list[float]
) -> None:
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    while time.perf_counter() < deadline and bodies:
        body = bodies.pop()
        started = time.perf_counter()
        response = await client.post("/api/v1/events", content=body, headers=headers)
        if response.status_code != 202:
            raise RuntimeError(f"{response.status_code}: {response.text[:300]}")
        out.append(time.perf_counter() - started)


async def run_http(
    url: str, key: str, bodies: list[bytes], seconds: float, clients: int
) -> list[float]:
    latencies: list[float] = []
    limits = httpx.Limits(max_connections=clients)
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as client:
        # Warm-up: every worker connects its pool and caches the key.
        await asyncio.gather(
            *(client_loop(client, key, bodies, time.perf_counter() + 2, []) for _ in range(clients))
        )
        deadline = time.perf_counter() + seconds
        started = time.perf_counter()
        await asyncio.gather(
            *(client_loop(client, key, bodies, deadline, latencies) for _ in range(clients))
        )
        elapsed = time.perf_counter() - started
    latencies.append(elapsed)  # last element: wall time of the measured phase
    return latencies


def wait_healthy(url: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("gunicorn exited")
        try:
            if httpx.get(f"{url}/healthz", timeout=0.5).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise TimeoutError("gunicorn did not become healthy")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--clients", type=int, default=6)
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument(
        "--prefill",
        type=int,
        default=2_000_000,
        help="first sightings stored before the run, so the unique index is already large",
    )
    args = parser.parse_args()

    key = setup_database()
    from analytics.models import RawEvent
    from flags.models import Environment

    environment = Environment.objects.get(project__key="bench", key="production")
    prefill_first_seen(environment.pk, args.prefill)
    rng = random.Random(42)
    now = datetime.now(UTC)
    # Enough batches for 60,000 events/s over the run; unused ones are simply not sent.
    n_batches = int(60 * (args.seconds + 3)) + 20
    print(f"generating {n_batches} batches of {BATCH_SIZE} events...", flush=True)
    bodies = [json.dumps(make_batch(rng, f"b{i}", now)).encode() for i in range(n_batches)]
    baseline_bodies = [bodies.pop() for _ in range(10)]
    baseline = baseline_in_process(baseline_bodies, environment.pk)

    url = f"http://127.0.0.1:{args.port}"
    env = server_env() | {"BIND": f"127.0.0.1:{args.port}", "WEB_CONCURRENCY": str(args.workers)}
    cmd = [
        sys.executable,
        "-m",
        "gunicorn",
        "-c",
        "python:flagsite.gunicorn_conf",
        "flagsite.asgi:application",
    ]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env)
    try:
        wait_healthy(url, proc)
        stored_before = RawEvent.objects.count()
        timings = asyncio.run(run_http(url, key, bodies, args.seconds, args.clients))
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=20)
    elapsed = timings.pop()
    batches = len(timings)
    stored = RawEvent.objects.count() - stored_before
    rate = batches * BATCH_SIZE / elapsed
    per_batch_ms = np.array(timings) * 1000
    print(f"gunicorn workers: {args.workers} (uvicorn), clients: {args.clients}, "
          f"batch size: {BATCH_SIZE}, measured for {elapsed:.1f}s")  # fmt: skip
    print(f"HTTP ingest: {rate:,.0f} events/s accepted ({batches} batches)")
    print(f"stored rows during the run (incl. warm-up): {stored:,}")
    print(f"per-batch latency: p50 {np.percentile(per_batch_ms, 50):.1f} ms, "
          f"p99 {np.percentile(per_batch_ms, 99):.1f} ms")  # fmt: skip
    print(f"baseline, in-process single thread (no HTTP): {baseline:,.0f} events/s; "
          f"HTTP/baseline = {rate / baseline:.2f}x")  # fmt: skip
    print(f"first sightings stored before the run: {args.prefill:,}")
    verdict = "PASS" if rate >= TARGET_EVENTS_PER_S else "FAIL"
    print(f"target >= {TARGET_EVENTS_PER_S:,} events/s: {verdict}")


if __name__ == "__main__":
    main()
