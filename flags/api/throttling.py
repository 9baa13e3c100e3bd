"""Rate limits per API key (or per user for sessions), as a fixed window counter in Redis.

DRF's SimpleRateThrottle stores every request's timestamp in one cache value, which at
thousands of requests a second per key means rewriting a huge list each time; a counter per
window costs one INCR. The limit is per key across all processes (the counter is shared).

The evaluation path's throttles are async and batched. Each process counts a key's requests
locally and, every SYNC_INTERVAL, writes its running total for the window into a Redis hash
(one field per process) and reads back the sum, in one script call on a redis.asyncio pool owned
by the running event loop. Far from the limit that happens in a task the request does not wait
for; once the key nears its limit, every request waits for it (at most NEAR_LIMIT_WAIT), so the
limit stays exact. Writing a running total rather than adding an increment makes a sync
idempotent: one that times out, is cancelled or is retried can never count twice. If Redis does
not answer, each process goes on limiting by its own count. Without Redis (embedded mode) the
counter lives in the process, so the limit applies per process there.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
import uuid
import weakref
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis
from django.conf import settings
from django.core.cache import cache
from redis.commands.core import AsyncScript
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


_pools: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, tuple[aioredis.Redis, AsyncScript]] = (
    weakref.WeakKeyDictionary()
)


def _redis() -> tuple[aioredis.Redis, AsyncScript] | None:
    """This loop's client and script: a pool is bound to the loop that made it (tests run
    several)."""
    url = settings.REDIS_URL
    if not url:
        return None
    loop = asyncio.get_running_loop()
    found = _pools.get(loop)
    if found is None:
        client = aioredis.Redis.from_url(
            url, socket_timeout=SYNC_TIMEOUT, socket_connect_timeout=SYNC_TIMEOUT
        )
        found = _pools[loop] = (client, client.register_script(_SET_AND_SUM))
    return found


@dataclass
class _Window:
    """One process's view of one counter window."""

    ends_at: float
    counted: int = 0  # this process's requests in the window
    others: int = 0  # every other process's, as of the last sync
    synced_at: float = 0.0
    syncing: bool = False
    sync_started_at: float = 0.0

    @property
    def estimate(self) -> int:
        return self.others + self.counted

    def begin_sync(self, now: float) -> int:
        """Marks a sync in flight (one at a time); returns the running total it sends."""
        self.syncing = True
        self.sync_started_at = now
        return self.counted

    def sync_done(self, others: int, now: float) -> None:
        self.others = max(self.others, others)  # a late answer cannot lower it
        self.synced_at = now
        self.syncing = False

    def sync_failed(self) -> None:
        self.syncing = False  # nothing to undo: the next sync sends the newer total


# A process's count reaches Redis at most this long after a request, or at once near the
# limit. Far from the limit a busy key then costs a round trip every SYNC_INTERVAL instead of
# one per request; the limit can overshoot by what other processes admitted within that
# interval, never more.
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
        state.counted += 1
        estimate = state.estimate
        near_limit = estimate > self.limit * NEAR_LIMIT
        due = near_limit or now - state.synced_at >= SYNC_INTERVAL
        if not due or (state.syncing and now - state.sync_started_at < SYNC_GIVE_UP):
            return estimate
        sync = self._send(name, state, state.begin_sync(now), now)
        if not near_limit:
            # Far from the limit the request does not wait for Redis: under CPU saturation the
            # Redis server itself can wait hundreds of milliseconds for a core, and every
            # request that awaited it became the latency tail.
            _in_background(sync, state)
            return estimate
        try:
            await asyncio.wait_for(sync, NEAR_LIMIT_WAIT)
        except (aioredis.RedisError, OSError) as exc:  # TimeoutError is an OSError
            state.sync_failed()
            _warn_unreachable(exc)
        except BaseException:
            state.sync_failed()
            raise
        return state.estimate

    async def _send(self, name: str, state: _Window, total_here: int, now: float) -> None:
        """Stores this process's running total and learns every process's."""
        redis = _redis()
        others = 0  # embedded mode: the process's own count is the count
        if redis is not None:
            script = redis[1]
            reply = await script(keys=[name], args=[_process_id(), total_here, self.period + 1])
            others = int(reply)
        state.sync_done(others, now)


# KEYS[1]: the window's hash; ARGV: this process's field, its running total, the TTL. A field
# only grows (an older total arriving late is ignored); the reply is the sum of the other
# processes' fields.
_SET_AND_SUM = """
local current = tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '0')
if tonumber(ARGV[2]) > current then
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
end
redis.call('EXPIRE', KEYS[1], ARGV[3], 'NX')
local others = 0
local fields = redis.call('HGETALL', KEYS[1])
for i = 1, #fields, 2 do
  if fields[i] ~= ARGV[1] then
    others = others + tonumber(fields[i + 1])
  end
end
return others
"""

_process: tuple[int, str] | None = None


def _process_id() -> str:
    """Unique per process, and new in a forked child (whose counts are its own)."""
    global _process
    if _process is None or _process[0] != os.getpid():
        _process = (os.getpid(), f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}")
    return _process[1]


_background: set[asyncio.Task[None]] = set()


def _in_background(sync: Coroutine[Any, Any, None], state: _Window) -> None:
    task = asyncio.get_running_loop().create_task(sync)
    _background.add(task)  # the loop keeps only a weak reference to its tasks

    def done(task: asyncio.Task[None]) -> None:
        # Also called for a task cancelled before it ran (its loop closing).
        _background.discard(task)
        if task.cancelled():
            state.sync_failed()
        elif (exc := task.exception()) is not None:
            state.sync_failed()
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
    """Forget windows that are over; if that is not enough, forget everything (a live window
    forgotten here undercounts this process until its new total passes the stored one)."""
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
