"""Rollout checks under faults, with real Celery workers, PostgreSQL and Redis.

- two workers checking the same due rollouts at once apply each stage exactly once;
- a worker killed (SIGKILL) between its decision and its write to the flag leaves nothing
  half applied, and the next pass makes that decision exactly once;
- a Redis restart (a private redis-server: broker, cache and pub/sub of a server and a worker)
  does not stop the checks, and a rollback still reaches an open stream and a running SDK.

No sleeps: a test makes a worker wait where it wants it by holding a row lock the worker needs
(from its own connection), and sees it waiting in ``pg_stat_activity``.
"""

from __future__ import annotations

import json
import signal
import subprocess
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any

import psycopg
import pytest
import redis
from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from flags.models import FlagState, Ruleset
from flagsite.celery import app
from rollouts.models import RolloutPlan
from rollouts.tasks import check_rollouts
from tests.integration.rollouts.clients import Watchers
from tests.integration.rollouts.scenario import (
    Rollout,
    make_rollout,
    rollback_written_at,
    send_red_traffic,
    send_traffic,
)
from tests.integration.rollouts.workers import WAIT, StartWorker, new_queue, send_check
from tests.support.processes import ServerProcess, free_port, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("transactional_db")]


def fast_rollout(project: str) -> Rollout:
    """10 % → 50 % → 100 %, no bake time, no guardrails: it progresses on every check that
    sees new exposures. For the machinery, not the statistics."""
    rollout = make_rollout(project, template="fast", guardrails=False, min_sample=1)
    stage_traffic(rollout, timezone.now() - timedelta(minutes=30), on=2, off=18)
    return rollout


def stage_traffic(rollout: Rollout, at: datetime, *, on: int, off: int) -> None:
    send_traffic(rollout.environment_id, at, on_users=on, off_users=off, requests_per_user=1)


@contextmanager
def row_locked(model: Any, pk: int) -> Iterator[int]:
    """Holds ``SELECT ... FOR UPDATE`` on one row from a connection of its own; yields that
    connection's backend pid."""
    db = connection.settings_dict
    conn = psycopg.connect(
        dbname=db["NAME"], user=db["USER"] or "postgres", host=db["HOST"] or "127.0.0.1",
        port=db["PORT"] or 5432,
    )  # fmt: skip
    try:
        table = model._meta.db_table
        conn.execute(f'SELECT 1 FROM "{table}" WHERE id = %s FOR UPDATE', [pk])
        pid = conn.execute("SELECT pg_backend_pid()").fetchone()
        assert pid is not None
        yield int(pid[0])
    finally:
        conn.rollback()
        conn.close()


def waiting_on(locker_pid: int) -> list[int]:
    """Backends waiting for a lock that ``locker_pid`` holds."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
            "AND %s = ANY(pg_blocking_pids(pid))",
            [locker_pid],
        )
        return [row[0] for row in cursor.fetchall()]


def backend_alive(pid: int) -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE pid = %s", [pid])
        row = cursor.fetchone()
        return bool(row and row[0])


def plan_row_locked(plan_id: int) -> bool:
    """Whether another transaction holds the plan's row lock (the check's lock)."""
    with transaction.atomic():
        rows = RolloutPlan.objects.select_for_update(skip_locked=True).filter(pk=plan_id)
        return not rows.exists()


def one_blocked(locker: int) -> int:
    found: list[int] = []

    def blocked() -> bool:
        found[:] = waiting_on(locker)
        return bool(found)

    wait_until(blocked, WAIT, "a worker to wait for the flag's row")
    assert len(found) == 1, found
    return found[0]


def verdicts(rollout: Rollout) -> list[str]:
    plan = RolloutPlan.objects.get(pk=rollout.plan_id)
    return list(plan.checks.order_by("sequence").values_list("verdict", flat=True))


def assert_applied_once(rollout: Rollout, stages: list[int]) -> None:
    """The plan, the flag, its history and the served ruleset agree: each of ``stages``
    (weights after the first) was written exactly once, by the rollout, in order."""
    plan = RolloutPlan.objects.get(pk=rollout.plan_id)
    state = FlagState.objects.get(pk=rollout.state_id)
    assert verdicts(rollout) == ["start"] + ["progress"] * len(stages)
    sequences = list(plan.checks.order_by("sequence").values_list("sequence", flat=True))
    assert sequences == list(range(1, len(stages) + 2))
    assert plan.current_stage == len(stages)
    assert plan.applied_state_version == state.version
    writes = state.history.filter(
        history_change_reason__startswith=f"rollout #{plan.pk} progress"
    ).order_by("history_id")
    weights = [h.default_serve["rollout"]["variants"][0]["weight"] for h in writes]
    assert weights == stages
    assert state.default_serve["rollout"]["variants"][0]["weight"] == stages[-1]
    served = Ruleset.objects.get(environment_id=rollout.environment_id).document
    assert served["flags"]["pdf"]["defaultServe"] == state.default_serve


def test_two_workers_at_once_apply_each_stage_exactly_once(workers: StartWorker) -> None:
    queue = new_queue()
    for _ in range(2):
        workers(queue)
    # One project each: a flag write locks its project's rulesets, and the point is to see
    # the two workers write at the same time.
    rollouts = [fast_rollout(f"two-workers-{i}") for i in range(4)]
    first, rest = rollouts[0], rollouts[1:]

    # Round 1. The first pass takes the first due plan, decides, and waits for the flag's
    # row (held here): while it holds that plan's lock, the second worker's pass skips the
    # plan and progresses all the others.
    with row_locked(FlagState, first.state_id) as locker:
        held = send_check(queue)
        one_blocked(locker)
        assert plan_row_locked(first.plan_id)
        other = send_check(queue)
        assert other.get(timeout=WAIT) == len(rest)
        # More passes (a beat firing again, a redelivered message): nothing is due any more.
        duplicates = [send_check(queue) for _ in range(2)]
        assert [d.get(timeout=WAIT) for d in duplicates] == [0, 0]
        assert verdicts(first) == ["start"]
    assert held.get(timeout=WAIT) == 1

    # Round 2: new exposures in stage 2, then four passes at once on both workers, racing.
    for rollout in rollouts:
        stage_traffic(rollout, timezone.now(), on=5, off=5)
    later = timezone.now() + timedelta(minutes=10)
    passes = [send_check(queue, later) for _ in range(4)]
    assert sum(p.get(timeout=WAIT) for p in passes) == len(rollouts)

    for rollout in rollouts:
        assert_applied_once(rollout, [50_000, 100_000])


@pytest.mark.parametrize("fault", ["killed", "frozen"])
def test_a_worker_lost_between_decision_and_write_leaves_nothing_half_done(
    workers: StartWorker, fault: str
) -> None:
    """``killed``: SIGKILL, its connection closes. ``frozen``: SIGSTOP, its connection stays
    open, as when a worker's machine is lost; PostgreSQL ends the abandoned transaction after
    the check's idle limit (1 s here)."""
    doomed_queue, next_queue = new_queue(), new_queue()
    doomed = workers(doomed_queue, {"FLAGSITE_ROLLOUT_CHECK_IDLE_TIMEOUT_SECONDS": "1"})
    workers(next_queue)
    rollout = fast_rollout(f"{fault}-worker")
    before = FlagState.objects.get(pk=rollout.state_id)

    with row_locked(FlagState, rollout.state_id) as locker:
        lost = send_check(doomed_queue)
        backend = one_blocked(locker)
        assert plan_row_locked(rollout.plan_id)  # the lost worker holds the plan's lock
        assert doomed.proc is not None
        frozen = doomed.proc
        if fault == "killed":
            doomed.kill()
        else:
            frozen.send_signal(signal.SIGSTOP)
    # Released: the lost worker's backend gets the flag's row and cannot go on. PostgreSQL
    # rolls its transaction back when it sees the connection closed (killed) or when the
    # transaction has been idle past the limit (frozen).
    wait_until(lambda: not backend_alive(backend), WAIT, "the lost worker's backend to end")

    state = FlagState.objects.get(pk=rollout.state_id)
    assert (state.version, state.default_serve) == (before.version, before.default_serve)
    assert verdicts(rollout) == ["start"]
    plan = RolloutPlan.objects.get(pk=rollout.plan_id)
    assert (plan.current_stage, plan.status) == (0, "running")
    assert not plan.notifications.exists()
    # acks_late: the lost task's message is not acknowledged, so the broker still holds it
    # and delivers it again after its visibility timeout.
    assert lost.id in unacked_task_ids()

    # The next pass (the beat's, on another worker) makes the decision, once.
    assert send_check(next_queue).get(timeout=WAIT) == 1
    # The same message delivered again (as after the visibility timeout): nothing to do.
    assert send_check(next_queue, task_id=lost.id).get(timeout=WAIT) == 0
    assert_applied_once(rollout, [50_000])
    if fault == "frozen":
        doomed.kill()


def unacked_task_ids() -> set[str]:
    """Task ids of the messages the Redis broker holds as delivered but not acknowledged."""
    client = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    prefix = settings.CELERY_BROKER_TRANSPORT_OPTIONS.get("global_keyprefix", "")
    ids = set()
    for raw in client.hvals(f"{prefix}unacked"):
        message = json.loads(raw)[0]
        ids.add(message["headers"]["id"])
    return ids


# --- A Redis restart ---------------------------------------------------------------------------


class PrivateRedis:
    """A redis-server of the test's own on a free port (never the shared one); restartable."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            ["redis-server", "--bind", "127.0.0.1", "--port", str(self.port), "--save", "",
             "--appendonly", "no", "--loglevel", "warning"],
            stdout=subprocess.DEVNULL,
        )  # fmt: skip
        wait_until(self._up, 10, f"redis-server on port {self.port}")

    def _up(self) -> bool:
        try:
            return bool(redis.Redis.from_url(self.url, socket_timeout=0.5).ping())
        except redis.RedisError:
            return False

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(10)
            self.proc = None


@pytest.fixture
def private_redis() -> Iterator[PrivateRedis]:
    server = PrivateRedis()
    server.start()
    yield server
    server.stop()


def test_checks_continue_and_a_rollback_reaches_clients_across_a_redis_restart(
    private_redis: PrivateRedis,  # first: torn down after the server and worker using it
    workers: StartWorker,
    server_factory: Callable[..., ServerProcess],
) -> None:
    queue = new_queue()
    env = {"REDIS_URL": private_redis.url}
    workers(queue, env)
    rollout = make_rollout("redis-restart")
    server = server_factory(extra_env={**env, "FLAGSITE_SSE_HEARTBEAT_SECONDS": "0.5"})
    watchers = Watchers(server.url, rollout.server_key)
    try:

        def beat_pass(now: datetime | None = None) -> None:
            # As the beat would: a message on the private broker, which the worker consumes.
            with app.connection_for_write(private_redis.url) as conn:
                kwargs = {"now": now.isoformat()} if now is not None else {}
                check_rollouts.apply_async(kwargs=kwargs, queue=queue, producer=conn.Producer())

        beat_pass()
        wait_until(lambda: len(verdicts(rollout)) == 2, WAIT, "the check before the restart")
        assert verdicts(rollout) == ["start", "hold"]  # no traffic yet

        private_redis.stop()  # everything in it is gone: queued messages, cache, subscriptions
        private_redis.start()

        send_red_traffic(rollout.environment_id, timezone.now() - timedelta(minutes=20))
        beat_pass(timezone.now() + timedelta(minutes=10))  # the next pass, once it is due
        stream_at, sdk_at = watchers.wait_for_rollback(WAIT)
        assert verdicts(rollout) == ["start", "hold", "rollback"]
        written = rollback_written_at(rollout.plan_id)
        print(
            f"\nafter a Redis restart, worker's rollback -> SSE stream {stream_at - written:.3f} s,"
            f" -> SDK {sdk_at - written:.3f} s"
        )
        assert sdk_at - written < 1.0
    finally:
        watchers.close()
