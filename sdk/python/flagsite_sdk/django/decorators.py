"""View decorators that gate a view on a flag.

``@kill_switch("checkout")`` keeps serving while the flag is on and answers with a maintenance
response (503 and Retry-After by default) once someone kills it. ``@flag_required("beta-ui")``
hides a view (404) from everyone the flag is off for. Both take ``response``: a callable
``(request) -> HttpResponse`` to answer with instead.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from inspect import iscoroutinefunction
from typing import Any, TypeVar

from django.http import Http404, HttpRequest, HttpResponse, HttpResponseBase
from django.template.loader import render_to_string

from flagsite_sdk.django.context import flags_for

View = TypeVar("View", bound=Callable[..., Any])
ResponseFactory = Callable[[HttpRequest], HttpResponseBase]


def flag_required(
    key: str, *, default: bool = False, response: ResponseFactory | None = None
) -> Callable[[View], View]:
    """Serves the view only when ``key`` is on for the request; else ``response`` or a 404.
    ``default`` applies when the flag is unknown or no ruleset has been received."""
    return _gate(key, default, response or _not_found)


def kill_switch(
    key: str,
    *,
    default: bool = True,
    response: ResponseFactory | None = None,
    status: int = 503,
    template_name: str | None = None,
    message: str = "This feature is temporarily unavailable. Please try again shortly.",
    retry_after: int | None = 120,
) -> Callable[[View], View]:
    """Serves the view while ``key`` is on; once the flag is killed (off), answers with
    ``response``, or ``template_name`` / ``message`` with ``status`` and Retry-After.
    ``default`` is True so that an unreachable flag server never takes a feature down."""

    def maintenance(request: HttpRequest) -> HttpResponseBase:
        if template_name is not None:
            body = render_to_string(template_name, {"flag": key}, request=request)
            answer = HttpResponse(body, status=status)
        else:
            answer = HttpResponse(message, status=status, content_type="text/plain")
        if retry_after is not None:
            answer["Retry-After"] = str(retry_after)
        return answer

    return _gate(key, default, response or maintenance)


def _not_found(request: HttpRequest) -> HttpResponseBase:
    raise Http404("Not found")


def _gate(key: str, default: bool, refuse: ResponseFactory) -> Callable[[View], View]:
    def decorate(view: View) -> View:
        if iscoroutinefunction(view):

            @functools.wraps(view)
            async def async_gated(request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
                flags = flags_for(request)
                await flags.aprepare()
                if not flags.is_enabled(key, default):
                    return refuse(request)
                return await view(request, *args, **kwargs)

            return async_gated  # type: ignore[return-value]

        @functools.wraps(view)
        def gated(request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
            if not flags_for(request).is_enabled(key, default):
                return refuse(request)
            return view(request, *args, **kwargs)

        return gated  # type: ignore[return-value]

    return decorate
