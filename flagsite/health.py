"""Liveness, readiness and the Prometheus scrape endpoint."""

from __future__ import annotations

import os

import redis
from django.conf import settings
from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.http import require_GET
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    generate_latest,
    multiprocess,
)

_PROBE_TIMEOUT_S = 1.0


@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    """The process is alive and answering; says nothing of its dependencies."""
    return JsonResponse({"status": "ok"})


def _check_database() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()
    return "ok"


def _check_redis_url(url: str) -> str:
    client = redis.Redis.from_url(
        url, socket_connect_timeout=_PROBE_TIMEOUT_S, socket_timeout=_PROBE_TIMEOUT_S
    )
    try:
        client.ping()
    finally:
        client.close()
    return "ok"


def _check_redis() -> str:
    if not settings.REDIS_URL:
        return "skipped (embedded mode has no Redis)"
    return _check_redis_url(settings.REDIS_URL)


def _check_broker() -> str:
    url: str = settings.CELERY_BROKER_URL
    if url.startswith(("redis://", "rediss://")):
        return _check_redis_url(url)
    if url.startswith("filesystem"):
        folder = settings.CELERY_BROKER_TRANSPORT_OPTIONS["data_folder_in"]
        if not os.access(folder, os.W_OK):
            raise OSError(f"broker folder {folder} is not writable")
        return "ok"
    from flagsite.celery import app

    with app.connection_for_write() as conn:
        conn.ensure_connection(max_retries=1, timeout=int(_PROBE_TIMEOUT_S))
    return "ok"


@require_GET
def readyz(request: HttpRequest) -> JsonResponse:
    """Ready when the database, Redis and the Celery broker all answer; names any that fail."""
    checks: dict[str, str] = {}
    failed: list[str] = []
    for name, probe in (
        ("database", _check_database),
        ("redis", _check_redis),
        ("broker", _check_broker),
    ):
        try:
            checks[name] = probe()
        except Exception as exc:
            checks[name] = f"error: {type(exc).__name__}: {exc}"
            failed.append(name)
    body = {"status": "fail" if failed else "ok", "failed": failed, "checks": checks}
    return JsonResponse(body, status=503 if failed else 200)


@require_GET
def metrics(request: HttpRequest) -> HttpResponse:
    """Prometheus text format; aggregates every worker when PROMETHEUS_MULTIPROC_DIR is set."""
    if "PROMETHEUS_MULTIPROC_DIR" in os.environ:
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return HttpResponse(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)
    return HttpResponse(generate_latest(REGISTRY), content_type=CONTENT_TYPE_LATEST)
