"""The embedded mode of the run command: SQLite, no Redis, a file-system Celery broker."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.support.processes import ROOT, free_port, wait_until

pytestmark = pytest.mark.integration


def _embedded_env(var_dir: Path) -> dict[str, str]:
    drop = {"DATABASE_URL", "REDIS_URL", "SECRET_KEY", "CELERY_BROKER_URL"}
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env.update(
        {
            "FLAGSITE_ENV": "demo",
            "FLAGSITE_VAR_DIR": str(var_dir),
            "DJANGO_SETTINGS_MODULE": "flagsite.settings",
        }
    )
    return env


def _manage(env: dict[str, str], *args: str) -> None:
    result = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr


@pytest.fixture(scope="module")
def embedded(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    var_dir = tmp_path_factory.mktemp("embedded-var")
    (var_dir / "broker").mkdir()
    env = _embedded_env(var_dir)
    _manage(env, "migrate", "--noinput", "-v0")
    return env


def test_embedded_web_serves_the_admin_login_and_is_ready(embedded: dict[str, str]) -> None:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "flagsite.asgi:application",
         "--port", str(port), "--log-level", "warning"],
        cwd=ROOT, env=embedded,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"

    def up() -> bool:
        try:
            return httpx.get(f"{base}/healthz", timeout=0.5).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        wait_until(up, 30, "the embedded web server")
        login = httpx.get(f"{base}/admin/login/", timeout=5)
        assert login.status_code == 200
        assert "csrfmiddlewaretoken" in login.text
        ready = httpx.get(f"{base}/readyz", timeout=5)
        assert ready.status_code == 200, ready.text
        assert ready.json()["checks"]["redis"].startswith("skipped")
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_embedded_worker_runs_tasks_on_the_file_broker(embedded: dict[str, str]) -> None:
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "flagsite", "worker", "--pool", "solo",
         "--loglevel", "WARNING"],
        cwd=ROOT, env=embedded,
    )  # fmt: skip
    try:
        result = subprocess.run(
            [sys.executable, "-c",
             "from flagsite.celery import ping; print(ping.delay('demo').get(timeout=60)['pong'])"],
            cwd=ROOT, env=embedded, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip() == "demo"
    finally:
        worker.terminate()
        worker.wait(timeout=15)


INGEST_SCRIPT = """
import django
django.setup()
from datetime import timedelta
from django.utils import timezone
from analytics import services
from analytics.models import Rollup
from flags.models import Environment, Project

project, _ = Project.objects.get_or_create(key="embedded-ingest", defaults={"name": "E"})
env, _ = Environment.objects.get_or_create(project=project, key="dev", defaults={"name": "Dev"})
now = timezone.now() - timedelta(minutes=1)

def batch(batch_id, users):
    return {"batch_id": batch_id, "events": [
        {"type": "exposure", "flag": "checkout", "variant": "on", "context_key": user,
         "timestamp": now.isoformat(), "assignments": {"checkout": "on"}}
        for user in users
    ]}

first = services.ingest(env.pk, batch("b1", ["ann", "bob", "ann"]))
again = services.ingest(env.pk, batch("b1", ["ann", "bob", "ann"]))
second = services.ingest(env.pk, batch("b2", ["bob", "cy"]))
rows = Rollup.objects.filter(environment=env, flag_key="checkout", metric="exposure")
print(first.duplicate, again.duplicate, second.duplicate,
      sum(r.events for r in rows), sum(r.users for r in rows))
"""


def test_embedded_ingest_counts_each_user_once(embedded: dict[str, str]) -> None:
    """The demo's SQLite path of ingestion: a retried batch stores nothing, and a user seen
    in two batches is one user."""
    result = subprocess.run(
        [sys.executable, "-c", INGEST_SCRIPT],
        cwd=ROOT, env=embedded, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["False", "True", "False", "5", "3"]
