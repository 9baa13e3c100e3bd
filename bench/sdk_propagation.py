"""Propagation benchmark: from a management API change to the new value in 20 SDK clients.

Starts the production server (gunicorn + uvicorn workers, flagsite/gunicorn_conf.py) against
a PostgreSQL database of its own, connects N FlagsiteClients over the SSE stream, then makes
100 changes through PATCH /api/v1/projects/.../environments/... with a management key. For
each change and client it records the time from just before the PATCH is sent until that
client's ``is_enabled`` returns the new value (taken in the client's ruleset listener, so the
benchmark never busy-waits and steals the CPU the clients need). Target: p99 under 250 ms.

    .venv/bin/python bench/sdk_propagation.py [--clients 20] [--changes 100] [--workers 2]

Environment: BENCH_DATABASE_URL (default postgres://postgres@127.0.0.1:5432/flagsite_sdk_bench),
REDIS_URL (default redis://127.0.0.1:6379/6), FLAGSITE_REDIS_PREFIX (default "sdkbench").
"""

from __future__ import annotations

import argparse
import functools
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "sdk" / "python")]

from flagsite_sdk import FlagsiteClient  # noqa: E402

from bench.ingest import wait_healthy  # noqa: E402

DATABASE_URL = os.environ.get(
    "BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/flagsite_sdk_bench"
)
REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/6")
PREFIX = os.environ.get("FLAGSITE_REDIS_PREFIX", "sdkbench")
FLAG = "propagation"
TARGET_P99_MS = 250.0


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
            "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "sdk" / "python")]),
        }
    )
    return env


def setup_database() -> tuple[str, str, str]:
    """Creates and migrates the bench database and a fresh project; returns the project key,
    a server key and a management key."""
    os.environ.update(server_env())
    import psycopg

    name = DATABASE_URL.rsplit("/", 1)[1]
    admin_url = DATABASE_URL.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')
    import django

    django.setup()
    from django.contrib.auth.models import User
    from django.core.management import call_command

    from apikeys.services import provision
    from flags import services
    from flags.models import Environment

    call_command("migrate", verbosity=0)
    owner, _ = User.objects.get_or_create(username="bench", defaults={"is_superuser": True})
    project = services.create_project(
        key=f"bench-{uuid.uuid4().hex[:8]}", name="Bench", actor=owner, source="api"
    )
    environment = Environment.objects.get(project=project, key="development")
    flag = services.create_flag(
        project, data={"key": FLAG, "name": "Propagation"}, actor=owner, source="api"
    )
    # Serve "on" when enabled, so each enable/disable flips what is_enabled returns.
    state = services.get_state(flag, environment)
    services.update_flag_state(
        state,
        changes={"default_serve": {"variant": "on"}},
        expected_version=state.version,
        actor=owner,
        source="api",
    )
    _, server_key = provision(environment=environment, kind="server", name="bench sdk")
    _, mgmt_key = provision(
        environment=environment, kind="management", name="bench ops", created_by=owner
    )
    return project.key, server_key, mgmt_key


class Observer:
    """Times, per client, when ``is_enabled`` first returns the value of the current change."""

    def __init__(self, clients: list[FlagsiteClient]) -> None:
        self.clients = clients
        self.expected = False
        self.started = 0.0
        self.seen: dict[int, float] = {}
        self.all_seen = threading.Event()
        self._lock = threading.Lock()
        for index, client in enumerate(clients):
            client.on_change(functools.partial(self._changed, index))

    def begin(self, expected: bool) -> None:
        with self._lock:
            self.expected = expected
            self.seen = {}
            self.all_seen.clear()
            self.started = time.perf_counter()

    def _changed(self, index: int, _snapshot: object) -> None:
        now = time.perf_counter()
        if self.clients[index].is_enabled(FLAG) is not self.expected:
            return
        with self._lock:
            if index not in self.seen:
                self.seen[index] = now - self.started
                if len(self.seen) == len(self.clients):
                    self.all_seen.set()


def run(url: str, project: str, server_key: str, mgmt_key: str, args: argparse.Namespace) -> int:
    clients = [
        FlagsiteClient(url, server_key, init_timeout=10, record_exposures=False)
        for _ in range(args.clients)
    ]
    try:
        deadline = time.monotonic() + 20
        while not all(c.stats().stream_connected for c in clients):
            if time.monotonic() > deadline:
                raise TimeoutError("not every client connected its stream")
            time.sleep(0.05)
        observer = Observer(clients)
        state_url = f"{url}/api/v1/projects/{project}/flags/{FLAG}/environments/development"
        http = httpx.Client(headers={"Authorization": f"Bearer {mgmt_key}"}, timeout=10)
        version = http.get(state_url).json()["version"]
        per_client: list[float] = []
        per_change: list[float] = []
        api_ms: list[float] = []
        missed = 0
        for i in range(args.changes):
            enabled = i % 2 == 0
            observer.begin(enabled)
            response = http.patch(state_url, json={"version": version, "enabled": enabled})
            api_ms.append((time.perf_counter() - observer.started) * 1000)
            response.raise_for_status()
            version = response.json()["version"]
            if not observer.all_seen.wait(5):
                missed += args.clients - len(observer.seen)
            times = list(observer.seen.values())
            per_client.extend(t * 1000 for t in times)
            if len(times) == args.clients:
                per_change.append(max(times) * 1000)
        assert all(c.is_enabled(FLAG) is ((args.changes - 1) % 2 == 0) for c in clients)
    finally:
        for client in clients:
            client.close(timeout=1)
    p50, p99 = np.percentile(per_client, [50, 99])
    print(f"{args.clients} clients, {args.changes} changes, {args.workers} server worker(s)")
    print(f"management API call (PATCH round trip): p50 {np.percentile(api_ms, 50):.1f} ms")
    print(f"change -> is_enabled, per client:        p50 {p50:.1f} ms, p99 {p99:.1f} ms, "
          f"max {max(per_client):.1f} ms")  # fmt: skip
    print(
        f"change -> all {args.clients} clients:            "
        f"p50 {np.percentile(per_change, 50):.1f} ms, p99 {np.percentile(per_change, 99):.1f} ms"
    )
    print(f"not seen within 5 s: {missed}")
    ok = p99 < TARGET_P99_MS and missed == 0
    print(f"target p99 < {TARGET_P99_MS:.0f} ms: {'PASS' if ok else 'FAIL'}")
    return 0 if ok else 1


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--changes", type=int, default=100)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--port", type=int, default=8766)
    args = parser.parse_args()
    project, server_key, mgmt_key = setup_database()
    url = f"http://127.0.0.1:{args.port}"
    env = server_env() | {"BIND": f"127.0.0.1:{args.port}", "WEB_CONCURRENCY": str(args.workers)}
    cmd = [sys.executable, "-m", "gunicorn", "-c", "python:flagsite.gunicorn_conf",
           "flagsite.asgi:application"]  # fmt: skip
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env)
    try:
        wait_healthy(url, proc)
        return run(url, project, server_key, mgmt_key, args)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=20)


if __name__ == "__main__":
    sys.exit(main())
