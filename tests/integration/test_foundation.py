"""The service foundation: settings, readiness, metrics, logs and a real Celery round trip."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys

import pytest
from django.test import Client
from pytest_django.fixtures import Settings as SettingsWrapper

from flagsite.celery import ping
from tests.support.processes import ROOT, WorkerProcess, free_port

pytestmark = pytest.mark.integration


@pytest.mark.django_db
def test_readyz_is_200_when_everything_is_up(client: Client) -> None:
    response = client.get("/readyz")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["failed"] == []
    assert body["checks"] == {"database": "ok", "redis": "ok", "broker": "ok"}


@pytest.mark.django_db
def test_readyz_names_redis_when_it_is_unreachable(
    client: Client, settings: SettingsWrapper
) -> None:
    closed = f"redis://127.0.0.1:{free_port()}/0"
    settings.REDIS_URL = closed
    settings.CELERY_BROKER_URL = closed
    response = client.get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert "redis" in body["failed"]
    assert "database" not in body["failed"]
    assert body["checks"]["redis"].startswith("error:")


def test_healthz_needs_no_dependency(client: Client) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}


def test_metrics_are_prometheus_text(client: Client) -> None:
    client.get("/healthz")
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    assert b'flagsite_http_requests_total{method="GET",route="healthz",status="200"}' in (
        response.content
    )


def test_request_id_is_echoed_and_logged(client: Client, caplog: pytest.LogCaptureFixture) -> None:
    from flagsite.observability import RequestIdFilter, request_id_var

    response = client.get("/healthz", HTTP_X_REQUEST_ID="abc123")
    assert response["X-Request-ID"] == "abc123"
    assert len(client.get("/healthz")["X-Request-ID"]) == 32
    token = request_id_var.set("req-42")
    try:
        record = logging.LogRecord("flagsite", logging.INFO, __file__, 1, "hello", None, None)
        RequestIdFilter().filter(record)
    finally:
        request_id_var.reset(token)
    from pythonjsonlogger.json import JsonFormatter

    line = JsonFormatter("%(levelname)s %(message)s %(request_id)s").format(record)
    assert json.loads(line) == {"levelname": "INFO", "message": "hello", "request_id": "req-42"}


def test_production_settings_refuse_to_start_without_a_secret_key() -> None:
    env = {k: v for k, v in os.environ.items() if k not in {"SECRET_KEY", "FLAGSITE_ENV"}}
    env.update({"DJANGO_SETTINGS_MODULE": "flagsite.settings", "DATABASE_URL": "sqlite:///x"})
    result = subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode != 0
    assert "SECRET_KEY is not set" in result.stderr
    env["SECRET_KEY"] = "a-real-secret"
    ok = subprocess.run(
        [sys.executable, "-c", "import django; django.setup(); print('up')"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.strip() == "up"


def test_debug_is_off_unless_set() -> None:
    from django.conf import settings

    assert "DEBUG" not in os.environ
    assert settings.DEBUG is False


def test_a_task_round_trips_through_a_real_worker(celery_worker_process: WorkerProcess) -> None:
    result = ping.delay("hello")
    payload = result.get(timeout=60)
    assert payload["pong"] == "hello"
    assert celery_worker_process.proc is not None
    assert payload["worker_pid"] == str(celery_worker_process.proc.pid)


def test_docker_compose_has_the_production_shape() -> None:
    import yaml

    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    assert {"postgres", "redis", "web", "worker", "beat"} <= set(services)
    for name in ("postgres", "redis", "web", "worker"):
        assert "healthcheck" in services[name], name
    assert {"pgdata", "redisdata"} <= set(compose["volumes"])
    assert "readyz" in " ".join(services["web"]["healthcheck"]["test"])


def test_docker_compose_config_validates() -> None:
    import shutil

    has_plugin = shutil.which("docker") is not None and (
        subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0
    )
    if shutil.which("docker-compose"):
        cmd = ["docker-compose", "-f", "docker-compose.yml", "config", "-q"]
    elif has_plugin:
        cmd = ["docker", "compose", "-f", "docker-compose.yml", "config", "-q"]
    else:
        pytest.skip("neither docker-compose nor the docker compose plugin is installed")
    result = subprocess.run(
        cmd, cwd=ROOT, env={**os.environ, "SECRET_KEY": "x"}, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr


def _manage(
    args: list[str], database_url: str, extra_env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, DATABASE_URL=database_url, DJANGO_SETTINGS_MODULE="flagsite.settings")
    env["FLAGSITE_ENV"] = "demo"
    env.update(extra_env or {})
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def test_the_run_command_creates_a_missing_postgresql_database() -> None:
    import uuid

    import psycopg
    from django.conf import settings

    db = settings.DATABASES["default"]
    server = f"{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}"
    name = f"flagsite_ensure_{uuid.uuid4().hex[:8]}"
    url = f"postgres://{server}/{name}"
    try:
        first = _manage(["ensure_database"], url)
        assert first.returncode == 0, first.stderr
        assert f"Created database '{name}'" in first.stdout
        again = _manage(["ensure_database"], url)
        assert again.returncode == 0, again.stderr
        assert again.stdout == ""
    finally:
        with psycopg.connect(f"postgresql://{server}/postgres", autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}"')


def test_the_production_mode_run_creates_a_missing_database_behind_the_pool() -> None:
    """Production mode connects through psycopg's pool, which used to turn "database does not
    exist" into a bare timeout; ensure_database now asks PostgreSQL directly."""
    import uuid

    import psycopg
    from django.conf import settings

    db = settings.DATABASES["default"]
    server = f"{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}"
    name = f"flagsite_ensure_prod_{uuid.uuid4().hex[:8]}"
    url = f"postgres://{server}/{name}"
    production = {
        "FLAGSITE_ENV": "production",
        "SECRET_KEY": "production-mode-test-only",
        "REDIS_URL": settings.REDIS_URL or "redis://127.0.0.1:6379/0",
    }
    try:
        first = _manage(["ensure_database"], url, production)
        assert first.returncode == 0, first.stderr
        assert f"Created database '{name}'" in first.stdout
        again = _manage(["ensure_database"], url, production)
        assert (again.returncode, again.stdout) == (0, ""), again.stderr
        pooled = _manage(["showmigrations", "flags"], url, production)  # through the pool
        assert pooled.returncode == 0, pooled.stderr
        assert "0001_initial" in pooled.stdout
    finally:
        with psycopg.connect(f"postgresql://{server}/postgres", autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_an_unreachable_database_is_named_not_a_traceback() -> None:
    from tests.support.processes import free_port

    result = _manage(["ensure_database"], f"postgres://postgres@127.0.0.1:{free_port()}/x")
    assert result.returncode == 1
    assert "Cannot connect to PostgreSQL at 127.0.0.1:" in result.stderr
    assert "Traceback" not in result.stderr
