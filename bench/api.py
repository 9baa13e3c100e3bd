"""API benchmark: evaluation throughput and latency, and kill-switch propagation over SSE.

Served the way production serves it: gunicorn with uvicorn workers (flagsite/gunicorn_conf.py,
WEB_CONCURRENCY=2 on this 2-core machine) on PostgreSQL and Redis. Load comes from wrk (C,
so the load generator takes as little of the two cores as possible); SSE subscribers are
httpx streams in this process.

    .venv/bin/python bench/api.py [--duration 10] [--subscribers 500] [--toggles 50]

Uses its own database (flagsite_api_bench) and Redis prefix; prints figures and PASS/FAIL per
target.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
DB_URL = os.environ.get(
    "BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/flagsite_api_bench"
)
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/4")
PREFIX = os.environ.get("BENCH_REDIS_PREFIX", "apibench")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


# --- Setup ------------------------------------------------------------------------------------


def ensure_database() -> None:
    import psycopg

    name = DB_URL.rsplit("/", 1)[1]
    with psycopg.connect(DB_URL.rsplit("/", 1)[0] + "/postgres", autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{name}"')


def setup_data() -> dict[str, str]:
    """Migrates and creates a fresh project with 20 flags; returns the raw keys and names."""
    os.environ.update(
        {
            "FLAGSITE_ENV": "test",
            "DATABASE_URL": DB_URL,
            "REDIS_URL": REDIS_URL,
            "FLAGSITE_REDIS_PREFIX": PREFIX,
            "DJANGO_SETTINGS_MODULE": "flagsite.settings",
        }
    )
    sys.path[:0] = [str(ROOT), str(ROOT / "sdk" / "python")]
    import django

    django.setup()
    from django.contrib.auth.models import User
    from django.core.management import call_command

    from apikeys.models import ApiKey
    from flags import services
    from flags.models import Environment, FlagState

    call_command("migrate", verbosity=0)
    owner, _ = User.objects.get_or_create(
        username="bench", defaults={"is_superuser": True, "is_staff": True}
    )
    project_key = f"bench{int(time.time())}"
    project = services.create_project(key=project_key, name="Bench", actor=owner, source="api")
    env = Environment.objects.get(project=project, key="development")
    rules = [
        {
            "id": "beta",
            "conditions": [{"attribute": "plan", "operator": "in", "values": ["beta", "pro"]}],
            "serve": {"variant": "on"},
        },
        {
            "id": "eu",
            "conditions": [{"attribute": "country", "operator": "in", "values": ["FR", "DE"]}],
            "serve": {
                "rollout": {
                    "variants": [
                        {"variant": "on", "weight": 50000},
                        {"variant": "off", "weight": 50000},
                    ]
                }
            },
        },
    ]
    for i in range(20):
        services.create_flag(
            project,
            data={"key": f"flag-{i}", "name": f"Flag {i}", "client_visible": i % 2 == 0},
            actor=owner,
            source="api",
        )
        state = FlagState.objects.get(flag__key=f"flag-{i}", environment=env)
        services.update_flag_state(
            state,
            changes={"enabled": True, "rules": rules},
            expected_version=state.version,
            actor=owner,
            source="api",
        )
    keys = {
        kind: ApiKey.issue(environment=env, kind=kind, name=kind, created_by=owner)[1]
        for kind in ("server", "client", "management")
    }
    return {**keys, "project": project_key}


def start_server(port: int) -> subprocess.Popen[bytes]:
    env = dict(os.environ)
    env.update(
        {
            "FLAGSITE_ENV": "production",
            "SECRET_KEY": "bench-only-secret",
            "DEBUG": "0",
            "ALLOWED_HOSTS": "127.0.0.1,localhost",
            "DATABASE_URL": DB_URL,
            "REDIS_URL": REDIS_URL,
            "FLAGSITE_REDIS_PREFIX": PREFIX,
            "DJANGO_SETTINGS_MODULE": "flagsite.settings",
            "WEB_CONCURRENCY": env.get("WEB_CONCURRENCY", "2"),
            "BIND": f"127.0.0.1:{port}",
            "LOG_LEVEL": "WARNING",
            "FLAGSITE_RATE_EVALUATION": "100000000/min",
            "SESSION_COOKIE_SECURE": "0",
            "CSRF_COOKIE_SECURE": "0",
            "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "sdk" / "python")]),
        }
    )
    cmd = [
        sys.executable,
        "-m",
        "gunicorn",
        "-c",
        "flagsite/gunicorn_conf.py",
        "flagsite.asgi:application",
    ]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=0.5).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError("gunicorn did not start")


# --- Throughput with wrk ----------------------------------------------------------------------

LUA = """wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer {key}"
wrk.body = '{body}'
"""


def _ms(text: str) -> float:
    value, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m|h)", text).groups()  # type: ignore[union-attr]
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1e3, "m": 6e4, "h": 3.6e6}[unit]


def row(name: str, conc: int, r: dict[str, float]) -> str:
    figures = f"{r['rps']:>8.0f} {r['p50']:>8.1f} {r['p99']:>8.1f} {r['errors']:>6.0f}"
    return f"{name:40} {conc:>4} {figures}"


def wrk(
    url: str, key: str, body: dict[str, object] | None, concurrency: int, duration: int
) -> dict[str, float]:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        if body is not None:
            script.write(LUA.format(key=key, body=json.dumps(body)))
    out = subprocess.run(
        ["wrk", "-t2", f"-c{concurrency}", f"-d{duration}s", "--latency", "-s", script.name, url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    os.unlink(script.name)
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    if "50%" not in out:
        raise RuntimeError(f"unexpected wrk output:\n{out}")
    p50 = _ms(re.search(r"^\s*50%\s+(\S+)", out, re.M).group(1))  # type: ignore[union-attr]
    p99 = _ms(re.search(r"^\s*99%\s+(\S+)", out, re.M).group(1))  # type: ignore[union-attr]
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    errors = int(non2xx.group(1)) if non2xx else 0
    if sock:
        errors += sum(int(g) for g in sock.groups())
    return {"rps": rps, "p50": p50, "p99": p99, "errors": errors}


# --- Propagation over SSE ---------------------------------------------------------------------


async def propagation(
    base: str, keys: dict[str, str], subscribers: int, toggles: int
) -> list[float]:
    flag = "flag-1"
    state_url = f"{base}/api/v1/projects/{keys['project']}/flags/{flag}/environments/development"
    mgmt = {"Authorization": f"Bearer {keys['management']}"}
    server = {"Authorization": f"Bearer {keys['server']}"}
    # subscriber index -> the moment it saw the flag's "enabled" become the awaited value
    seen: list[asyncio.Future[float]] = []
    want: list[bool] = [False]
    connected = 0
    client = httpx.AsyncClient(
        timeout=httpx.Timeout(10.0, read=None),
        limits=httpx.Limits(max_connections=subscribers + 20),
    )

    async def subscribe(i: int) -> None:
        nonlocal connected
        async with client.stream("GET", f"{base}/api/v1/sdk/stream", headers=server) as response:
            connected += 1
            async for line in response.aiter_lines():
                if not line.startswith("data:"):
                    continue
                enabled = json.loads(line[5:])["ruleset"]["flags"][flag]["enabled"]
                fut = seen[i]
                if enabled is want[0] and not fut.done():
                    fut.set_result(time.perf_counter())

    loop = asyncio.get_running_loop()
    seen.extend(loop.create_future() for _ in range(subscribers))
    tasks = [asyncio.create_task(subscribe(i)) for i in range(subscribers)]
    while connected < subscribers:
        await asyncio.sleep(0.05)
    api = httpx.AsyncClient(timeout=10.0)
    delays: list[float] = []
    try:
        for _ in range(toggles):
            # Re-enable (not measured) and wait until everyone saw it.
            want[0] = True
            seen[:] = [loop.create_future() for _ in range(subscribers)]
            version = (await api.get(state_url, headers=mgmt)).json()["version"]
            r = await api.patch(state_url, headers=mgmt, json={"version": version, "enabled": True})
            r.raise_for_status()
            await asyncio.wait_for(asyncio.gather(*seen), 30)
            # The measured kill.
            want[0] = False
            seen[:] = [loop.create_future() for _ in range(subscribers)]
            started = time.perf_counter()
            r = await api.post(f"{state_url}/kill", headers=mgmt, json={"reason": "bench"})
            r.raise_for_status()
            received = await asyncio.wait_for(asyncio.gather(*seen), 30)
            delays.extend((t - started) * 1000 for t in received)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await client.aclose()
        await api.aclose()
    return delays


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--subscribers", type=int, default=500)
    parser.add_argument("--toggles", type=int, default=50)
    parser.add_argument("--port", type=int, default=8765)
    args = parser.parse_args()
    ensure_database()
    keys = setup_data()
    proc = start_server(args.port)
    base = f"http://127.0.0.1:{args.port}"
    ok = True
    try:
        context = {"targetingKey": "user-42", "plan": "free", "country": "FR"}
        cases: list[tuple[str, str, str, dict[str, object]]] = [
            (
                "POST /api/v1/evaluate (1 flag)",
                "/api/v1/evaluate",
                "server",
                {"flag": "flag-3", "context": context},
            ),
            (
                "POST /api/v1/evaluate/all (10 flags)",
                "/api/v1/evaluate/all",
                "client",
                {"context": context},
            ),
        ]
        for _, path, kind, body in cases:  # warm every worker's caches
            for _ in range(20):
                httpx.post(
                    base + path, json=body, headers={"Authorization": f"Bearer {keys[kind]}"}
                )
        print(f"{'endpoint':40} {'conc':>4} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'errors':>6}")
        # Baseline in the same run: the cheapest Django view through the same stack.
        base_row = wrk(base + "/healthz", keys["server"], None, 64, args.duration)
        print(row("GET /healthz (baseline: Django, no API)", 64, base_row))
        for name, path, kind, body in cases:
            for conc in (16, 64):
                r = wrk(base + path, keys[kind], body, conc, args.duration)
                print(row(name, conc, r))
                if path == "/api/v1/evaluate" and conc == 64:
                    passed = r["rps"] >= 1500 and r["p99"] < 100 and r["errors"] == 0
                    ok &= passed
                    ratio = r["rps"] / base_row["rps"]
                    verdict = "PASS" if passed else "FAIL"
                    print(f"  {ratio:.2f}x the baseline's req/s")
                    print(f"  target >=1500 req/s, p99 <100 ms, 0 errors at c=64: {verdict}")
        delays = asyncio.run(propagation(base, keys, args.subscribers, args.toggles))
        p50, p99 = percentile(delays, 50), percentile(delays, 99)
        print(
            f"propagation kill -> {args.subscribers} SSE subscribers x {args.toggles} toggles: "
            f"p50 {p50:.1f} ms, p99 {p99:.1f} ms, max {max(delays):.1f} ms, "
            f"mean {statistics.fmean(delays):.1f} ms ({len(delays)} receipts)"
        )
        passed = p99 < 200 and len(delays) == args.subscribers * args.toggles
        ok &= passed
        print(f"  target p99 <200 ms to all subscribers: {'PASS' if passed else 'FAIL'}")
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
