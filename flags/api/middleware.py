"""Refuses NUL characters in the path and query of API requests, before any view sees them.

PostgreSQL cannot hold a NUL in text, so a key or filter carrying one made the query fail (500).
A lone surrogate cannot reach here: the server decodes percent-escapes that are not UTF-8 into
U+FFFD. The check is two substring tests, so requests without a NUL pay nothing measurable.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.http import HttpRequest, JsonResponse
from django.http.response import HttpResponseBase
from django.urls import Resolver404, resolve

from flags.api.errors import is_api_path

NUL = "\x00"
MESSAGE = "NUL characters are not allowed."


def _field_of_path(path: str) -> str:
    """The URL parameter (``key``, ``project``...) holding the NUL, "" when none is named."""
    try:
        match = resolve(path)
    except Resolver404:
        return ""
    for name, value in match.kwargs.items():
        if NUL in str(value):
            return str(name)
    return ""


def refusal(request: HttpRequest) -> JsonResponse | None:
    path = request.path
    query = request.META.get("QUERY_STRING", "")
    if NUL not in path and "%00" not in query and NUL not in query:
        return None
    if not is_api_path(path):
        return None
    if NUL in path:
        field = _field_of_path(request.path_info)
    else:
        field = next(
            (
                name
                for name, values in request.GET.lists()
                if NUL in name or any(NUL in v for v in values)
            ),
            "",
        )
    if path.startswith("/ofrep/"):
        body: dict[str, Any] = {"errorCode": "PARSE_ERROR", "errorDetails": f"{field}: {MESSAGE}"}
        if field == "key":
            body["key"] = request.path_info.rsplit("/", 1)[-1]
        return JsonResponse(body, status=400)
    return JsonResponse({"errors": [{"path": field, "message": MESSAGE}]}, status=400)


class ApiInputMiddleware:
    sync_capable = True
    async_capable = True

    def __init__(
        self,
        get_response: Callable[[HttpRequest], HttpResponseBase | Awaitable[HttpResponseBase]],
    ) -> None:
        self.get_response = get_response
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest) -> Any:
        refused = refusal(request)
        if self.is_async:
            return self._acall(request, refused)
        return refused if refused is not None else self.get_response(request)

    async def _acall(self, request: HttpRequest, refused: JsonResponse | None) -> HttpResponseBase:
        if refused is not None:
            return refused
        response = self.get_response(request)
        assert not isinstance(response, HttpResponseBase)
        return await response
