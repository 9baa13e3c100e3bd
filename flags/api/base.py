"""The base views: JSON only, the API's error shape, rate limits per key.

``ApiView`` is plain DRF (sync) for management. ``AsyncApiView`` serves the evaluation path on
the event loop: authentication, permission and throttle checks are awaited in place, and the
response leaves already rendered. adrf's ``APIView`` gives the sync/async dispatch switch and
keeps these DRF views (so drf-spectacular documents them), but its ``async_dispatch`` runs
``initial()`` through ``sync_to_async`` and async authenticators through ``async_to_sync``: two
thread hops per request, which is what this path must avoid, hence the override below.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import orjson
from adrf.views import APIView as AdrfAPIView  # type: ignore[import-untyped]
from asgiref.sync import iscoroutinefunction
from django.http import HttpResponse
from django.http.response import HttpResponseBase
from rest_framework import exceptions
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from flags.api import errors
from flags.api.parsers import EvaluationJSONParser, JSONBodyParser


class FastJSONRenderer(JSONRenderer):
    """orjson where it can (several times faster); DRF's encoder for what orjson refuses."""

    def render(
        self,
        data: Any,
        accepted_media_type: str | None = None,
        renderer_context: Mapping[str, Any] | None = None,
    ) -> bytes:
        if data is None:
            return b""
        try:
            rendered: bytes = orjson.dumps(data, option=orjson.OPT_NON_STR_KEYS)
            return rendered
        except TypeError:  # integers beyond 64 bits, exotic types: the stdlib path copes
            fallback: bytes = super().render(data, accepted_media_type, renderer_context)
            return fallback


class ApiView(APIView):
    renderer_classes = [JSONRenderer]
    parser_classes = [JSONBodyParser]

    def get_exception_handler(self) -> Callable[[Exception, dict[str, Any]], Response | None]:
        return errors.exception_handler


class AsyncApiView(AdrfAPIView):  # type: ignore[misc]
    """Handlers are ``async def``; nothing here leaves the event loop unless a check must."""

    renderer_classes = [FastJSONRenderer]
    parser_classes = [EvaluationJSONParser]
    # Short, database-free requests: flagsite.asgi serves them without Django's per-request
    # signals (see there); a cache miss does its own connection hygiene (flagsite.db).
    lean_asgi = True

    def get_exception_handler(self) -> Callable[[Exception, dict[str, Any]], Response | None]:
        return errors.exception_handler

    async def async_dispatch(self, request: Any, *args: Any, **kwargs: Any) -> HttpResponseBase:
        self.args = args
        self.kwargs = kwargs
        drf_request = self.initialize_request(request, *args, **kwargs)
        self.request = drf_request
        self.headers = self.default_response_headers
        try:
            await self._initial(drf_request, *args, **kwargs)
            method = (drf_request.method or "").lower()
            handler = getattr(self, method, None) if method in self.http_method_names else None
            if handler is None:
                handler = self.http_method_not_allowed
            response = handler(drf_request, *args, **kwargs)
            if iscoroutinefunction(handler):
                response = await response
        except Exception as exc:
            response = self.handle_exception(exc)
        self.response = self.finalize_response(drf_request, response, *args, **kwargs)
        return _rendered(self.response)

    async def _initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        """DRF's ``initial()`` with the checks awaited instead of run on a thread."""
        self.format_kwarg = self.get_format_suffix(**kwargs)
        request.accepted_renderer, request.accepted_media_type = self.perform_content_negotiation(
            request
        )
        request.version, request.versioning_scheme = self.determine_version(
            request, *args, **kwargs
        )
        await self._authenticate(request)
        self.check_permissions(request)  # ours are pure: they read request.auth
        for throttle in self.get_throttles():
            allowed = throttle.allow_request(request, self)
            if iscoroutinefunction(throttle.allow_request):
                allowed = await allowed
            if not allowed:
                self.throttled(request, throttle.wait())

    async def _authenticate(self, request: Any) -> None:
        # DRF's Request._authenticate(), awaiting async authenticators (private hooks kept).
        for authenticator in request.authenticators:
            try:
                result: Any = authenticator.authenticate(request)
                if iscoroutinefunction(authenticator.authenticate):
                    result = await result
            except exceptions.APIException:
                request._not_authenticated()
                raise
            if result is not None:
                request._authenticator = authenticator
                request.user, request.auth = result
                return
        request._not_authenticated()


def _rendered(response: HttpResponseBase) -> HttpResponseBase:
    """A plain HttpResponse: Django renders a template-style response on a thread otherwise."""
    if not isinstance(response, Response):
        return response
    response.render()
    return HttpResponse(
        response.content, status=response.status_code, headers=dict(response.items())
    )
