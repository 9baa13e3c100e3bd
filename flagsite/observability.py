"""Request ids for structured logs, and Prometheus metrics for ops."""

from __future__ import annotations

import contextvars
import logging
import time
import uuid
from collections.abc import Awaitable, Callable

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.http import HttpRequest, HttpResponse
from prometheus_client import Counter, Histogram

request_id_var: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")

HTTP_REQUESTS = Counter(
    "flagsite_http_requests_total", "HTTP requests served", ["method", "route", "status"]
)
HTTP_LATENCY = Histogram(
    "flagsite_http_request_seconds",
    "HTTP request latency",
    ["method", "route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)


class RequestIdFilter(logging.Filter):
    """Puts the current request id on every log record."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id_var.get()
        return True


def _route(request: HttpRequest) -> str:
    # The URL pattern, not the path, so label cardinality stays bounded.
    match = getattr(request, "resolver_match", None)
    return match.route if match is not None else "unmatched"


class RequestIdMiddleware:
    """Assigns a request id (or keeps the caller's X-Request-ID) and records request metrics.

    Works in both sync and async stacks, so streaming views are not forced onto a thread.
    """

    sync_capable = True
    async_capable = True

    def __init__(
        self, get_response: Callable[[HttpRequest], HttpResponse | Awaitable[HttpResponse]]
    ) -> None:
        self.get_response = get_response
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)

    def _start(self, request: HttpRequest) -> tuple[str, contextvars.Token[str], float]:
        incoming = request.headers.get("X-Request-ID", "")
        rid = incoming if 0 < len(incoming) <= 128 else uuid.uuid4().hex
        return rid, request_id_var.set(rid), time.perf_counter()

    def _finish(
        self,
        request: HttpRequest,
        response: HttpResponse,
        rid: str,
        token: contextvars.Token[str],
        started: float,
    ) -> HttpResponse:
        response["X-Request-ID"] = rid
        route = _route(request)
        HTTP_REQUESTS.labels(request.method, route, str(response.status_code)).inc()
        HTTP_LATENCY.labels(request.method, route).observe(time.perf_counter() - started)
        request_id_var.reset(token)
        return response

    def __call__(self, request: HttpRequest) -> HttpResponse | Awaitable[HttpResponse]:
        if self.is_async:
            return self.__acall__(request)
        rid, token, started = self._start(request)
        response = self.get_response(request)
        assert isinstance(response, HttpResponse | object)
        return self._finish(request, response, rid, token, started)  # type: ignore[arg-type]

    async def __acall__(self, request: HttpRequest) -> HttpResponse:
        rid, token, started = self._start(request)
        response = await self.get_response(request)  # type: ignore[misc]
        return self._finish(request, response, rid, token, started)
