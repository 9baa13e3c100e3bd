"""The embedded mode of the run command: SQLite, no Redis, a file-system Celery broker."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.support.processes import ROOT, free_port, is_healthy, wait_until
from tests.support.sse import EventStream

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


# --- Rulesets that heal, with no Redis at all ---------------------------------------------------

SETUP_SCRIPT = """
import django
django.setup()
import json, sys
from django.contrib.auth.models import User
from apikeys import services as apikey_services
from flags import services
from flags.models import Environment, FlagState
project_key = sys.argv[1]
owner, _ = User.objects.get_or_create(username="owner", defaults={"is_superuser": True})
if not owner.is_superuser:
    owner.is_superuser = True
    owner.save()
project = services.create_project(key=project_key, name="Healing", actor=owner, source="api")
dev = Environment.objects.get(project=project, key="development")
services.create_flag(project, data={"key": "banner", "name": "Banner"}, actor=owner, source="api")
state = FlagState.objects.get(flag__project=project, flag__key="banner", environment=dev)
services.update_flag_state(
    state, changes={"enabled": True}, expected_version=state.version, actor=owner,
    source="api", reason="start enabled",
)
key, raw = apikey_services.provision(dev, kind="server", name="server")
print(json.dumps({"state": state.pk, "key": raw, "key_id": key.pk}))
"""

KILL_BY_WORKER = """
import django
django.setup()
import json, sys
from flags.tasks import kill_flag
print(json.dumps(kill_flag.delay(int(sys.argv[1]), "automated rollback").get(timeout=60)))
"""

REVOKE_BY_SHELL = """
import time
from django.contrib.auth.models import User
from apikeys import services
from apikeys.models import ApiKey
services.revoke(ApiKey.objects.get(pk=KEY_ID), actor=User.objects.get(username="owner"),
                reason="leaked")
print(time.time())
"""


def _python(env: dict[str, str], code: str, *args: str) -> str:
    result = subprocess.run(
        [sys.executable, "-c", code, *args],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return result.stdout.strip().splitlines()[-1]


def _embedded_server(env: dict[str, str]) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "flagsite.asgi:application",
         "--port", str(port), "--log-level", "warning", "--timeout-graceful-shutdown", "1"],
        cwd=ROOT, env={**env, "FLAGSITE_SSE_HEARTBEAT_SECONDS": "0.5"},
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"

    wait_until(lambda: is_healthy(base), 90, "the embedded web server")
    return proc, base


def test_embedded_a_change_by_the_celery_worker_reaches_an_open_stream(
    embedded: dict[str, str],
) -> None:
    world = json.loads(_python(embedded, SETUP_SCRIPT, "heal-worker"))
    headers = {"Authorization": f"Bearer {world['key']}"}
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "flagsite", "worker", "--pool", "solo",
         "--loglevel", "WARNING"],
        cwd=ROOT, env=embedded,
    )  # fmt: skip
    server, base = _embedded_server(embedded)
    stream = EventStream(f"{base}/api/v1/sdk/stream", headers)
    try:
        first, _ = stream.next_ruleset(lambda d: True, 30)
        assert first["ruleset"]["flags"]["banner"]["enabled"] is True

        done = json.loads(_python(embedded, KILL_BY_WORKER, str(world["state"])))

        assert done["enabled"] is False
        data, arrived_at = stream.next_ruleset(
            lambda d: d["ruleset"]["flags"]["banner"]["enabled"] is False, 10
        )
        assert data["version"] > first["version"]
        assert arrived_at - done["committed_at"] < 2.0
    finally:
        stream.close()
        for proc in (server, worker):
            proc.terminate()
            proc.wait(timeout=15)


def test_embedded_a_key_revoked_from_the_shell_stops_working_within_2s(
    embedded: dict[str, str],
) -> None:
    world = json.loads(_python(embedded, SETUP_SCRIPT, "heal-key"))
    headers = {"Authorization": f"Bearer {world['key']}"}
    server, base = _embedded_server(embedded)
    url = f"{base}/api/v1/evaluate"
    try:
        for _ in range(5):  # cached in the server from here on
            assert httpx.post(url, json={"flag": "banner"}, headers=headers).status_code == 200
        revoke = REVOKE_BY_SHELL.replace("KEY_ID", str(world["key_id"]))
        result = subprocess.run(
            [sys.executable, "manage.py", "shell", "-c", revoke],
            cwd=ROOT, env=embedded, capture_output=True, text=True, timeout=180,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        committed_at = float(result.stdout.strip().splitlines()[-1])

        last_accepted = 0.0
        deadline = time.monotonic() + 10
        while True:
            code = httpx.post(url, json={"flag": "banner"}, headers=headers).status_code
            if code == 200:
                last_accepted = time.time()
            elif code == 401:
                break
            assert time.monotonic() < deadline, "the revoked key kept working"
        assert last_accepted - committed_at < 2.0
        again = [httpx.post(url, json={"flag": "banner"}, headers=headers) for _ in range(3)]
        assert {r.status_code for r in again} == {401}
    finally:
        server.terminate()
        server.wait(timeout=15)
