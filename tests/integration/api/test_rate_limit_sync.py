"""The evaluation limit against a Redis that does not answer (a stalled or starved server).

Far from its limit a request must not wait for Redis: the count goes in the background. Near
the limit it waits, but at most REDIS_TIMEOUT, and then the process limits by its own count.
"""

from __future__ import annotations

import asyncio
import itertools
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from rest_framework.request import Request
from rest_framework.test import APIRequestFactory
from rest_framework.views import APIView

from apikeys.authentication import AuthenticatedKey
from flags.api import throttling
from flags.api.throttling import NEAR_LIMIT_WAIT, EvaluationThrottle

pytestmark = pytest.mark.integration

VIEW = APIView()
# Key ids of their own, new in every run: windows live on in the process and in Redis.
_ids = itertools.count(uuid.uuid4().int % 10**12 + 10**12)


class SilentRedis:
    """A TCP server on a free port that reads and keeps everything and never replies."""

    def __init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"redis://127.0.0.1:{self._listener.getsockname()[1]}/0"
        self.received = bytearray()
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._read, args=(conn,), daemon=True).start()

    def _read(self, conn: socket.socket) -> None:
        with conn:
            while data := conn.recv(65536):
                with self._lock:
                    self.received += data

    def asked(self) -> bool:
        """Whether a client has sent anything (a connection starts with a HELLO handshake)."""
        with self._lock:
            return bool(self.received)

    def close(self) -> None:
        self._listener.close()


@pytest.fixture
def silent_redis(settings: Any) -> Iterator[SilentRedis]:
    server = SilentRedis()
    settings.REDIS_URL = server.url
    yield server
    server.close()


def request_with_key() -> Request:
    request = Request(APIRequestFactory().post("/api/v1/evaluate"))
    request.auth = AuthenticatedKey(
        id=next(_ids), kind="server", environment_id=1, project_id=1,
        environment_key="development", created_by_id=None, prefix="fs_test",
    )  # fmt: skip
    return request


def limit(settings: Any, rate: str) -> None:
    settings.FLAGSITE_API_RATES = {**settings.FLAGSITE_API_RATES, "evaluation": rate}


def test_far_from_the_limit_a_request_does_not_wait_for_redis(
    silent_redis: SilentRedis, settings: Any
) -> None:
    limit(settings, "1000/min")
    request = request_with_key()

    async def scenario() -> tuple[bool, int]:
        started = time.monotonic()
        # Redis never answers: the request is allowed all the same, without waiting for it
        # (waiting would end in a timeout after NEAR_LIMIT_WAIT or SYNC_TIMEOUT).
        allowed = await asyncio.wait_for(EvaluationThrottle().allow_request(request, VIEW), 5)
        waited = time.monotonic() - started
        # The count still goes out, from a task of its own.
        for _ in range(250):
            if silent_redis.asked():
                break
            await asyncio.sleep(0.02)
        return allowed, waited < NEAR_LIMIT_WAIT

    allowed, answered_without_waiting = asyncio.run(scenario())
    assert allowed is True
    assert answered_without_waiting
    assert silent_redis.asked()


def test_near_the_limit_a_request_waits_for_redis_only_so_long(
    silent_redis: SilentRedis,
    settings: Any,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    limit(settings, "1/min")  # the first request is already near the limit
    monkeypatch.setattr(throttling, "_warned_at", -throttling._WARN_EVERY)  # not yet warned
    request = request_with_key()

    async def scenario() -> list[bool]:
        throttle = EvaluationThrottle()
        return [await asyncio.wait_for(throttle.allow_request(request, VIEW), 5) for _ in range(2)]

    assert asyncio.run(scenario()) == [True, False]
    assert silent_redis.asked()
    assert "counting in this process until it does" in caplog.text


def test_without_redis_answers_the_process_still_limits_by_its_own_count(
    silent_redis: SilentRedis, settings: Any
) -> None:
    limit(settings, "4/min")
    request = request_with_key()

    async def scenario() -> list[bool]:
        throttle = EvaluationThrottle()
        return [await asyncio.wait_for(throttle.allow_request(request, VIEW), 5) for _ in range(6)]

    assert asyncio.run(scenario()) == [True, True, True, True, False, False]


def test_a_sync_repeated_or_answered_late_never_counts_twice(settings: Any) -> None:
    """A sync whose answer is lost (timeout, cancelled task) may have reached Redis; sending
    the process's running total rather than an increment makes resending it harmless."""
    import redis

    limit(settings, "1000/min")
    throttle = EvaluationThrottle()
    name = f"{settings.REDIS_PREFIX}:throttle:test-idempotent:{uuid.uuid4().hex}"
    state = throttling._Window(ends_at=time.time() + 60)

    async def scenario() -> None:
        await throttle._send(name, state, 5, time.time())
        await throttle._send(name, state, 5, time.time())  # the same total again
        await throttle._send(name, state, 3, time.time())  # an older total, late

    asyncio.run(scenario())
    store = redis.Redis.from_url(settings.REDIS_URL)
    assert sum(int(v) for v in store.hvals(name)) == 5
    assert state.others == 0  # no other process has counted


def test_requests_on_short_lived_loops_are_counted_exactly(settings: Any) -> None:
    """Every request on a loop of its own (as Django's test client and async_to_sync do):
    background syncs are cancelled when their loop closes, and the limit still holds exactly."""
    limit(settings, "20/hour")
    request = request_with_key()

    async def one() -> bool:
        return await EvaluationThrottle().allow_request(request, VIEW)

    assert [asyncio.run(one()) for _ in range(25)] == [True] * 20 + [False] * 5
