"""A rollback applied by the Celery worker reaches an open SSE stream and a running Python SDK
within a second: on PostgreSQL with Redis (pub/sub), and in the embedded mode (SQLite, no
Redis, the file-system broker: the server's periodic ruleset check is the only path).

The delay is measured from the rollback's history row, which the worker writes inside the
transaction, so before its commit: the figure printed is an upper bound of commit → client.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone

from tests.integration.rollouts.clients import Watchers
from tests.integration.rollouts.scenario import make_rollout, rollback_written_at, send_red_traffic
from tests.integration.rollouts.workers import WAIT, StartWorker, new_queue, send_check
from tests.support.processes import ROOT, ServerProcess, free_port, is_healthy, wait_until

pytestmark = pytest.mark.integration
BOUND_S = 1.0


def report(mode: str, written_at: float, stream_at: float, sdk_at: float) -> None:
    print(
        f"\n{mode}: worker's rollback -> SSE stream {stream_at - written_at:.3f} s, "
        f"-> running SDK {sdk_at - written_at:.3f} s (bound {BOUND_S:g} s)"
    )


@pytest.mark.usefixtures("transactional_db")
def test_with_postgres_and_redis_a_workers_rollback_reaches_clients_within_1s(
    workers: StartWorker, server_factory: Callable[..., ServerProcess]
) -> None:
    queue = new_queue()
    workers(queue)
    rollout = make_rollout("propagation")
    send_red_traffic(rollout.environment_id, timezone.now() - timedelta(minutes=30))
    server = server_factory(extra_env={"FLAGSITE_SSE_HEARTBEAT_SECONDS": "0.5"})
    watchers = Watchers(server.url, rollout.server_key)
    try:
        assert send_check(queue).get(timeout=WAIT) == 1
        stream_at, sdk_at = watchers.wait_for_rollback(WAIT)
    finally:
        watchers.close()
    written_at = rollback_written_at(rollout.plan_id)
    report("PostgreSQL + Redis", written_at, stream_at, sdk_at)
    assert stream_at - written_at < BOUND_S
    assert sdk_at - written_at < BOUND_S


# --- The embedded mode -------------------------------------------------------------------------


def embedded_env(var_dir: Path) -> dict[str, str]:
    drop = {"DATABASE_URL", "REDIS_URL", "SECRET_KEY", "CELERY_BROKER_URL", "CELERY_RESULT_BACKEND"}
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env.update(
        {
            "FLAGSITE_ENV": "demo",
            "FLAGSITE_VAR_DIR": str(var_dir),
            "DJANGO_SETTINGS_MODULE": "flagsite.settings",
            "FLAGSITE_SSE_HEARTBEAT_SECONDS": "0.5",
            "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "sdk" / "python")]),
        }
    )
    return env


def scenario(env: dict[str, str], *args: str) -> dict[str, object]:
    result = subprocess.run(
        [sys.executable, "-m", "tests.integration.rollouts.scenario", *args],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    out: dict[str, object] = json.loads(result.stdout.strip().splitlines()[-1])
    return out


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    # SIGKILL: nothing of theirs outlives the test's temporary folder, and a warm shutdown of
    # the file-broker worker alone takes seconds.
    for proc in started:
        proc.kill()
    for proc in started:
        proc.wait(timeout=15)


def test_embedded_a_workers_rollback_reaches_clients_within_1s(
    tmp_path: Path, processes: list[subprocess.Popen[bytes]]
) -> None:
    (tmp_path / "broker").mkdir()
    env = embedded_env(tmp_path)
    # The worker and the server start (seconds of imports) while the database is set up.
    processes.append(
        subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "flagsite", "worker", "--pool", "solo",
             "--loglevel", "WARNING"],
            cwd=ROOT, env=env,
        )
    )  # fmt: skip
    port = free_port()
    processes.append(
        subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "flagsite.asgi:application", "--port", str(port),
             "--log-level", "warning", "--timeout-graceful-shutdown", "1"],
            cwd=ROOT, env=env,
        )
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    rollout = scenario(env, "migrate-and-red-rollout", "embedded-propagation")

    wait_until(lambda: is_healthy(base), 90, "the embedded web server")
    watchers = Watchers(base, str(rollout["server_key"]))
    try:
        done = scenario(env, "beat-pass-until-rolled-back", str(rollout["plan_id"]))
        stream_at, sdk_at = watchers.wait_for_rollback(WAIT)
    finally:
        watchers.close()
    assert done["checks"] == ["start", "rollback"]
    written_at = float(done["written_at"])  # type: ignore[arg-type]
    report("embedded (SQLite, no Redis)", written_at, stream_at, sdk_at)
    assert stream_at - written_at < BOUND_S
    assert sdk_at - written_at < BOUND_S
