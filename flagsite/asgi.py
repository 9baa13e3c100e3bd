"""ASGI entry point: streams (SSE) hold a coroutine each, not a thread.

Django runs each request inside its own ``ThreadSensitiveContext``, so the first sync call of a
request (the ``request_started`` signal, at the latest ``response.close()``) starts a fresh
thread that is joined when the request ends: a thread created and destroyed per request, which
capped even /healthz at a few hundred requests a second. Requests for async views (evaluation,
OFREP, SDK ruleset and stream) skip that context: their few remaining sync calls (those two
signal hops, a key or ruleset cache miss) share the process's one sync thread instead. Sync
views (admin, management) keep a thread per request, so a slow one cannot stall the others.
"""

from __future__ import annotations

import gc
import os
from functools import lru_cache
from typing import Any

from asgiref.sync import iscoroutinefunction
from django.core.asgi import get_asgi_application
from django.core.handlers.asgi import ASGIHandler
from django.urls import Resolver404, get_resolver

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "flagsite.settings")

_django: ASGIHandler = get_asgi_application()

# Everything loaded so far lives as long as the process: freezing it keeps the collector from
# re-scanning Django's hundreds of thousands of objects, a pause of tens of milliseconds that
# landed on whichever requests were in flight (the p99).
gc.collect()
gc.freeze()


@lru_cache(maxsize=4096)
def _is_async_view(path: str) -> bool:
    try:
        match = get_resolver().resolve(path)
    except Resolver404:
        return False
    return iscoroutinefunction(match.func)


async def application(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "http" and _is_async_view(scope["path"]):
        await _django.handle(scope, receive, send)
    else:
        await _django(scope, receive, send)
