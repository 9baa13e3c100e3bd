"""Rate limits per API key (or per user for sessions), as a fixed window counter in Redis.

DRF's SimpleRateThrottle stores every request's timestamp in one cache value, which at
thousands of requests a second per key means rewriting a huge list each time; a counter per
window costs one INCR. The limit is per key across all processes (the counter is shared).

The evaluation path's throttles are async and batched: each process counts a key's requests
locally and adds them to the shared Redis counter (one pipelined INCRBY + EXPIRE NX on a
redis.asyncio pool owned by the running event loop) every SYNC_INTERVAL, or on every request
once the key nears its limit. Checking a limit never blocks the loop or hops to a thread, and a
busy key costs a few round trips a second instead of one per request. Without Redis (embedded
mode) the counter lives in the process, so the limit applies per process there.
"""

from __future__ import annotations

import asyncio
import time
import weakref
from dataclasses import dataclass

import redis.asyncio as aioredis
from django.conf import settings
from django.core.cache import cache
from rest_framework.request import Request
from rest_framework.throttling import BaseThrottle
from rest_framework.views import APIView

from flags.api.permissions import request_key

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
        client = _pools[loop] = aioredis.Redis.from_url(url)
    return client


@dataclass
class _Window:
    """One process's view of one counter window: what Redis said, plus what it has not sent."""

    ends_at: float
    known_total: int = 0  # the shared count at the last sync (every process's requests)
    pending: int = 0  # requests counted here since
    synced_at: float = 0.0
    syncing: bool = False


# Requests this process has not yet added to the shared counter are sent at most this long
# after they happen, or at once near the limit. Far from the limit a busy key then costs a
# round trip every SYNC_INTERVAL instead of one per request; the limit can overshoot by what
# other processes admitted within that interval, never more.
SYNC_INTERVAL = 0.05
NEAR_LIMIT = 0.8
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
        estimate = state.known_total + state.pending
        due = now - state.synced_at >= SYNC_INTERVAL or estimate > self.limit * NEAR_LIMIT
        if due and not state.syncing:
            await self._sync(name, state, now)
            return state.known_total + state.pending
        return estimate

    async def _sync(self, name: str, state: _Window, now: float) -> None:
        client = _redis()
        sent, state.pending = state.pending, 0
        if client is None:  # embedded mode: the process's own count is the count
            state.known_total += sent
            state.synced_at = now
            return
        state.syncing = True
        try:
            async with client.pipeline(transaction=False) as pipe:
                pipe.incrby(name, sent)
                pipe.expire(name, self.period + 1, nx=True)
                state.known_total = int((await pipe.execute())[0])
        except BaseException:
            state.pending += sent  # try again with the next request
            raise
        finally:
            state.syncing = False
        state.synced_at = now


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
