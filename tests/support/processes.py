"""Real processes for integration tests: a Flagsite web server and a Celery worker.

They run against the same test database and Redis namespace as the test process, so what a
test commits is what the server sees.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_until(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    """Polls ``predicate`` until it holds; fails with ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.02)
    raise TimeoutError(f"timed out after {timeout}s waiting for {what}")


def is_healthy(base_url: str) -> bool:
    """Whether a Flagsite server answers ``/healthz`` at ``base_url`` (False while it starts)."""
    try:
        return httpx.get(f"{base_url}/healthz", timeout=0.5).status_code == 200
    except httpx.HTTPError:
        return False


def stop_all(procs: list[subprocess.Popen[bytes]], timeout: float = 15) -> None:
    """Stops processes all at once (each warm shutdown takes seconds; they need not queue up),
    killing any that outlive ``timeout``."""
    for proc in procs:
        proc.terminate()
    for proc in procs:
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def child_env(database_name: str, extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of a child process that shares this test run's database and Redis."""
    from django.conf import settings

    db = settings.DATABASES["default"]
    user = db.get("USER") or "postgres"
    host = db.get("HOST") or "127.0.0.1"
    port = db.get("PORT") or 5432
    env = dict(os.environ)
    env.update(
        {
            "FLAGSITE_ENV": "test",
            "DJANGO_SETTINGS_MODULE": "flagsite.settings",
            "DATABASE_URL": f"postgres://{user}@{host}:{port}/{database_name}",
            "REDIS_URL": settings.REDIS_URL or "",
            "FLAGSITE_REDIS_PREFIX": settings.REDIS_PREFIX,
            "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "sdk" / "python")]),
        }
    )
    env.update(extra or {})
    return env


@dataclass
class ServerProcess:
    """A Flagsite ASGI server (uvicorn) on a free port; stop() and start() may be repeated."""

    database_name: str
    port: int = field(default_factory=free_port)
    workers: int = 1
    extra_env: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        cmd = [
            sys.executable, "-m", "uvicorn", "flagsite.asgi:application",
            "--host", "127.0.0.1", "--port", str(self.port),
            "--workers", str(self.workers), "--log-level", "warning", "--no-access-log",
            # Open SSE streams would otherwise hold a stop for uvicorn's full grace period.
            "--timeout-graceful-shutdown", "1",
        ]  # fmt: skip
        self.proc = subprocess.Popen(
            cmd, cwd=ROOT, env=child_env(self.database_name, self.extra_env)
        )
        # generous: on a loaded machine two workers importing Django take tens of seconds
        wait_until(self._healthy, 90, f"the server on port {self.port}")

    def _healthy(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise RuntimeError(f"server exited with code {self.proc.returncode}")
        return is_healthy(self.url)

    def stop(self) -> None:
        if self.proc is None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc = None


@dataclass
class WorkerProcess:
    """A real Celery worker consuming the test run's queue on the real Redis broker.

    ``queues`` (comma-separated) makes it consume only those, so a test's tasks reach the
    workers it started and no other; ``extra_env`` overrides the environment (another broker).
    """

    database_name: str
    queues: str = ""
    extra_env: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        cmd = [
            sys.executable, "-m", "celery", "-A", "flagsite", "worker",
            "--pool", "solo", "--loglevel", "WARNING", "--without-gossip", "--without-mingle",
        ]  # fmt: skip
        if self.queues:
            cmd += ["--queues", self.queues]
        self.proc = subprocess.Popen(
            cmd, cwd=ROOT, env=child_env(self.database_name, self.extra_env)
        )

    def kill(self) -> None:
        """SIGKILL: no shutdown, no ack, no rollback sent by the worker (a lost machine)."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)
        self.proc = None

    def stop(self) -> None:
        if self.proc is None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc = None
