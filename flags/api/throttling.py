"""Rate limits per API key (or per user for sessions), as a fixed window counter in Redis.

DRF's SimpleRateThrottle stores every request's timestamp in one cache value, which at
thousands of requests a second per key means rewriting a huge list each time; a counter per
window costs one INCR. The limit is per key across all processes (the counter is shared).

The evaluation path's throttles are async: one pipelined INCR + EXPIRE NX on a redis.asyncio
connection pool owned by the running event loop (one per worker process), so checking a limit
never blocks the loop or hops to a thread. Without Redis (embedded mode) the counter lives in
the process, so the limit applies per process there.
"""

from __future__ import annotations

import asyncio
import time
import weakref

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
_local_counts: dict[str, int] = {}


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


class AsyncKeyRateThrottle(KeyRateThrottle):
    async def allow_request(self, request: Request, view: APIView) -> bool:  # type: ignore[override]
        ident = self.identity(request)
        now = time.time()
        window = int(now // self.period)
        name = f"{settings.REDIS_PREFIX}:throttle:{self.scope}:{ident}:{window}"
        client = _redis()
        if client is None:
            if len(_local_counts) > 10_000:
                _local_counts.clear()
            count = _local_counts[name] = _local_counts.get(name, 0) + 1
        else:
            async with client.pipeline(transaction=False) as pipe:
                pipe.incr(name)
                pipe.expire(name, self.period + 1, nx=True)
                count = (await pipe.execute())[0]
        if count <= self.limit:
            return True
        self.wait_s = (window + 1) * self.period - now
        return False


class EvaluationThrottle(AsyncKeyRateThrottle):
    scope = "evaluation"


class SdkThrottle(AsyncKeyRateThrottle):
    scope = "sdk"


class ManagementThrottle(KeyRateThrottle):
    scope = "management"
