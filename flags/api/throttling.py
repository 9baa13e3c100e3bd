"""Rate limits per API key (or per user for sessions), as a fixed window counter in Redis.

DRF's SimpleRateThrottle stores every request's timestamp in one cache value, which at
thousands of requests a second per key means rewriting a huge list each time; a counter per
window costs one INCR. The limit is per key across all processes (the counter is shared).

The evaluation path's throttles are async and batched: each process counts a key's requests
locally and adds them to the shared Redis counter (one pipelined INCRBY + EXPIRE NX on a
redis.asyncio pool owned by the running event loop) every SYNC_INTERVAL, in a task the request
does not wait for; once the key nears its limit, every request waits for its sync so the limit
stays exact. Checking a limit never blocks the loop or hops to a thread, and a busy key costs a
few round trips a second instead of one per request. If Redis does not answer, each process
goes on limiting by its own count. Without Redis (embedded mode) the counter lives in the
process, so the limit applies per process there.
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis
from django.conf import settings
from django.core.cache import cache
from rest_framework.request import Request
from rest_framework.throttling import BaseThrottle
from rest_framework.views import APIView

from flags.api.permissions import request_key

log = logging.getLogger(__name__)

_PERIODS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_rate(rate: str) -> tuple[int, int]:
    """'6000/min' -> (6000, 60)."""
    count, period = rate.split("/")
    return int(count), _PERIODS[period.strip()[0]]


class KeyRateThrottle(BaseThrottle):
    scope = "evaluation"

    def __init__(self) -> None:
        rates: dict[str, str] = settings.FLAGSITE_API_RATES
        self.limit, self.period = parse_rate(rates[self.scope])
        self.wait_s = 0.0

    def identity(self, request: Request) -> str | None:
        key = request_key(request)
        if key is not None:
            return f"key:{key.id}"
        if request.user and request.user.is_authenticated:
            return f"user:{request.user.pk}"
        return self.get_ident(request)

    def allow_request(self, request: Request, view: APIView) -> bool:
        ident = self.identity(request)
        now = time.time()
        window = int(now // self.period)
        name = f"throttle:{self.scope}:{ident}:{window}"
        try:
            count = cache.incr(name)
        except ValueError:
            count = 1 if cache.add(name, 1, timeout=self.period + 1) else cache.incr(name)
        if count <= self.limit:
            return True
        self.wait_s = (window + 1) * self.period - now
        return False

    def wait(self) -> float:
        return self.wait_s


_pools: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, aioredis.Redis] = (
    weakref.WeakKeyDictionary()
)


def _redis() -> aioredis.Redis | None:
    """This loop's client: a pool is bound to the loop that made it (tests run several)."""
    url = settings.REDIS_URL
    if not url:
        return None
    loop = asyncio.get_running_loop()
    client = _pools.get(loop)
    if client is None:
        client = _pools[loop] = aioredis.Redis.from_url(
            url, socket_timeout=SYNC_TIMEOUT, socket_connect_timeout=SYNC_TIMEOUT
        )
    return client


@dataclass
class _Window:
    """One process's view of one counter window: what Redis said, plus what it has not sent."""

    ends_at: float
    known_total: int = 0  # the shared count at the last sync (every process's requests)
    pending: int = 0  # requests counted here since, not yet sent
    in_flight: int = 0  # requests being sent
    synced_at: float = 0.0
    syncing: bool = False
    sync_started_at: float = 0.0

    @property
    def estimate(self) -> int:
        return self.known_total + self.in_flight + self.pending

    def begin_sync(self, now: float) -> int:
        """Marks a sync in flight (one at a time) and hands over the pending count."""
        sent, self.pending = self.pending, 0
        self.in_flight += sent
        self.syncing = True
        self.sync_started_at = now
        return sent

    def sync_done(self, sent: int, total: int, now: float) -> None:
        self.known_total = max(self.known_total, total)  # a late answer cannot lower it
        self.in_flight -= sent
        self.synced_at = now
        self.syncing = False

    def sync_failed(self, sent: int) -> None:
        self.in_flight -= sent
        self.pending += sent  # to go with the next sync
        self.syncing = False


# Requests this process has not yet added to the shared counter are sent at most this long
# after they happen, or at once near the limit. Far from the limit a busy key then costs a
# round trip every SYNC_INTERVAL instead of one per request; the limit can overshoot by what
# other processes admitted within that interval, never more.
SYNC_INTERVAL = 0.05
NEAR_LIMIT = 0.8
# A sync still unanswered after this long is taken as lost and another may start.
SYNC_GIVE_UP = 1.0
# How long a sync may take at all (background syncs), and how long a request near its limit
# waits for one before counting on its own.
SYNC_TIMEOUT = 5.0
NEAR_LIMIT_WAIT = 0.5
_windows: dict[str, _Window] = {}


class AsyncKeyRateThrottle(KeyRateThrottle):
    async def allow_request(self, request: Request, view: APIView) -> bool:  # type: ignore[override]
        ident = self.identity(request)
        now = time.time()
        window = int(now // self.period)
        name = f"{settings.REDIS_PREFIX}:throttle:{self.scope}:{ident}:{window}"
        count = await self._count(name, now, (window + 1) * self.period)
        if count <= self.limit:
            return True
        self.wait_s = (window + 1) * self.period - now
        return False

    async def _count(self, name: str, now: float, ends_at: float) -> int:
        state = _windows.get(name)
        if state is None:
            if len(_windows) > 10_000:
                _prune(now)
            state = _windows[name] = _Window(ends_at)
        state.pending += 1
        estimate = state.estimate
        near_limit = estimate > self.limit * NEAR_LIMIT
        due = near_limit or now - state.synced_at >= SYNC_INTERVAL
        if not due or (state.syncing and now - state.sync_started_at < SYNC_GIVE_UP):
            return estimate
        sent = state.begin_sync(now)
        sync = self._send(name, state, sent, now)
        if not near_limit:
            # Far from the limit the request does not wait for Redis: under CPU saturation the
            # Redis server itself can wait hundreds of milliseconds for a core, and every
            # request that awaited it became the latency tail.
            _in_background(sync, state, sent)
            return estimate
        try:
            await asyncio.wait_for(sync, NEAR_LIMIT_WAIT)
        except (aioredis.RedisError, OSError) as exc:  # TimeoutError is an OSError
            state.sync_failed(sent)
            _warn_unreachable(exc)
        except BaseException:
            state.sync_failed(sent)
            raise
        return state.estimate

    async def _send(self, name: str, state: _Window, sent: int, now: float) -> None:
        """Adds this process's count to the shared counter and learns the total."""
        client = _redis()
        if client is None:  # embedded mode: the process's own count is the count
            total = state.known_total + sent
        else:
            async with client.pipeline(transaction=False) as pipe:
                pipe.incrby(name, sent)
                pipe.expire(name, self.period + 1, nx=True)
                total = int((await pipe.execute())[0])
        state.sync_done(sent, total, now)


_background: set[asyncio.Task[None]] = set()


def _in_background(sync: Coroutine[Any, Any, None], state: _Window, sent: int) -> None:
    task = asyncio.get_running_loop().create_task(sync)
    _background.add(task)  # the loop keeps only a weak reference to its tasks

    def done(task: asyncio.Task[None]) -> None:
        # Also called for a task cancelled before it ran (its loop closing): nothing is lost.
        _background.discard(task)
        if task.cancelled():
            state.sync_failed(sent)
        elif (exc := task.exception()) is not None:
            state.sync_failed(sent)
            _warn_unreachable(exc)

    task.add_done_callback(done)


_WARN_EVERY = 30.0
_warned_at = -_WARN_EVERY


def _warn_unreachable(exc: BaseException) -> None:
    """At most one line per _WARN_EVERY: an outage must not become a flood of log lines."""
    global _warned_at
    now = time.monotonic()
    if now - _warned_at >= _WARN_EVERY:
        _warned_at = now
        log.warning(
            "rate limit: Redis did not answer (%s); counting in this process until it does",
            type(exc).__name__,
        )


def _prune(now: float) -> None:
    """Forget windows that are over; if that is not enough, forget everything (counts only
    go back to what Redis holds, so nothing is lost but a few round trips)."""
    for name, state in list(_windows.items()):
        if state.ends_at <= now:
            _windows.pop(name, None)
    if len(_windows) > 10_000:
        _windows.clear()


class EvaluationThrottle(AsyncKeyRateThrottle):
    scope = "evaluation"


class SdkThrottle(AsyncKeyRateThrottle):
    scope = "sdk"


class ManagementThrottle(KeyRateThrottle):
    scope = "management"


class EventsThrottle(KeyRateThrottle):
    scope = "events"


class ReportsThrottle(KeyRateThrottle):
    scope = "reports"
