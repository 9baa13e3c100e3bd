"""ASGI entry point: streams (SSE) hold a coroutine each, not a thread.

Django runs each request inside its own ``ThreadSensitiveContext``, so the first sync call of a
request (the ``request_started`` signal, at the latest ``response.close()``) starts a fresh
thread that is joined when the request ends: a thread created and destroyed per request, which
capped even /healthz at a few hundred requests a second. Requests for async views skip that
context; their sync calls share the process's one sync thread instead. Sync views (admin,
management) keep a thread per request, so a slow one cannot stall the others.

The evaluation views (``lean_asgi`` on flags.api.base.AsyncApiView) go further: they are short,
never stream and touch the database only on a cache miss, so they are served without Django's
``request_started``/``request_finished`` signals, whose receivers (connection and cache
hygiene) are sync and cost two hops to that thread per request, and without the task that
watches for a disconnect. Middleware, URL resolution, views and exception handling are
Django's own (``get_response_async``); the cache-miss queries do the connection hygiene the
signals would have done (flagsite.db).
"""

from __future__ import annotations

import gc
import os
from functools import lru_cache
from typing import Any

from asgiref.sync import iscoroutinefunction
from django.core.asgi import get_asgi_application
from django.core.exceptions import RequestAborted
from django.core.handlers.asgi import ASGIHandler, get_script_prefix
from django.urls import Resolver404, get_resolver, set_script_prefix

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "flagsite.settings")

_django: ASGIHandler = get_asgi_application()

# Everything loaded so far lives as long as the process: freezing it keeps the collector from
# re-scanning Django's hundreds of thousands of objects, a pause of tens of milliseconds that
# landed on whichever requests were in flight (the p99).
gc.collect()
gc.freeze()


ORDINARY, ASYNC, LEAN = 0, 1, 2


@lru_cache(maxsize=4096)
def _kind_of_view(path: str) -> int:
    try:
        match = get_resolver().resolve(path)
    except Resolver404:
        return ORDINARY
    if not iscoroutinefunction(match.func):
        return ORDINARY
    view_class = getattr(match.func, "cls", None) or getattr(match.func, "view_class", None)
    return LEAN if getattr(view_class, "lean_asgi", False) else ASYNC


async def _serve_lean(scope: dict[str, Any], receive: Any, send: Any) -> None:
    try:
        body = await _django.read_body(receive)
    except RequestAborted:
        return
    try:
        set_script_prefix(get_script_prefix(scope))
        request, error_response = _django.create_request(scope, body)
        response = error_response if request is None else await _django.get_response_async(request)
        assert response is not None
        await _django.send_response(response, send)
    finally:
        body.close()


async def application(scope: dict[str, Any], receive: Any, send: Any) -> None:
    kind = _kind_of_view(scope["path"]) if scope["type"] == "http" else ORDINARY
    if kind == LEAN:
        await _serve_lean(scope, receive, send)
    elif kind == ASYNC:
        await _django.handle(scope, receive, send)
    else:
        await _django(scope, receive, send)
