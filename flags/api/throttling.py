"""Rate limits per API key (or per user for sessions), as a fixed window counter in the cache.

DRF's SimpleRateThrottle stores every request's timestamp in one cache value, which at
thousands of requests a second per key means rewriting a huge list each time; a counter per
window costs one INCR.
"""

from __future__ import annotations

import time

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


class EvaluationThrottle(KeyRateThrottle):
    scope = "evaluation"


class SdkThrottle(KeyRateThrottle):
    scope = "sdk"


class ManagementThrottle(KeyRateThrottle):
    scope = "management"
