"""Attaches ``request.flags`` (a RequestFlags) to every request."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from inspect import iscoroutinefunction

from django.http import HttpRequest, HttpResponseBase
from django.utils.decorators import sync_and_async_middleware

from flagsite_sdk.django.context import RequestFlags

Handler = Callable[[HttpRequest], HttpResponseBase]
AsyncHandler = Callable[[HttpRequest], Awaitable[HttpResponseBase]]


@sync_and_async_middleware
def FlagsiteMiddleware(  # noqa: N802 - Django middleware are named like classes
    get_response: Handler | AsyncHandler,
) -> Handler | AsyncHandler:
    if iscoroutinefunction(get_response):
        async_get_response: AsyncHandler = get_response

        async def async_middleware(request: HttpRequest) -> HttpResponseBase:
            flags = RequestFlags(request)
            request.flags = flags  # type: ignore[attr-defined]
            await flags.aprepare()
            return await async_get_response(request)

        return async_middleware

    sync_get_response: Handler = get_response  # type: ignore[assignment]

    def middleware(request: HttpRequest) -> HttpResponseBase:
        request.flags = RequestFlags(request)  # type: ignore[attr-defined]
        return sync_get_response(request)

    return middleware
