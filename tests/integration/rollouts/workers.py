"""Real Celery workers for rollout tests, each test on queues of its own, and beat passes sent
to them the way the schedule sends them."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

import pytest
from celery.result import AsyncResult
from django.conf import settings
from django.db import connection

from rollouts.tasks import check_rollouts
from tests.support.processes import WorkerProcess, stop_all

StartWorker = Callable[..., WorkerProcess]
WAIT = 60  # seconds: generous for workers importing Django on a loaded machine


@pytest.fixture
def workers() -> Iterator[StartWorker]:
    """Starts workers on the test database (``start(queue, extra_env)``); stops them all."""
    started: list[WorkerProcess] = []

    def start(queue: str, extra_env: dict[str, str] | None = None) -> WorkerProcess:
        worker = WorkerProcess(connection.settings_dict["NAME"], queue, extra_env or {})
        worker.start()
        started.append(worker)
        return worker

    yield start
    stop_all([w.proc for w in started if w.proc is not None])


def new_queue() -> str:
    """A queue of the test's own: no other worker of the run (a session worker) takes its
    tasks, so the test knows which worker runs what."""
    return f"{settings.REDIS_PREFIX}-rollouts-{uuid.uuid4().hex[:8]}"


def send_check(queue: str, now: datetime | None = None, **options: Any) -> AsyncResult[int]:
    """One beat pass (the task the schedule sends), with its result kept so the test can wait
    for it; the result is the number of rollouts the pass decided on."""
    kwargs = {"now": now.isoformat()} if now is not None else {}
    result: AsyncResult[int] = check_rollouts.apply_async(
        kwargs=kwargs, queue=queue, ignore_result=False, **options
    )
    return result
