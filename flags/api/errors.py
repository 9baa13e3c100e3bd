"""One error shape for the API.

- 400: ``{"errors": [{"path": "rules[0].conditions[1].operator", "message": "..."}]}``; paths
  are relative to the object in the request, in the names the request uses.
- 409: ``{"detail": "...", "currentVersion": n}`` for a stale version, or
  ``{"detail": "...", "approvalRequired": true}`` where the environment needs a change request.
- 401, 403, 404, 405, 413, 415, 429: ``{"detail": "..."}``; 500: ``{"detail": "...", "requestId"}``.
- A body that is not acceptable JSON (flags.api.parsers) is a 400 in the first shape, its path
  naming the place (``""`` for the body as a whole).

Django's own error pages (no URL, an exception outside DRF) are JSON on the API's paths too:
see ``api_error_page``.
"""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views import defaults
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from flags.api.parsers import BodyInvalid
from flags.api.serializers import api_path
from flags.errors import ApprovalRequired, ChangeRejected, VersionConflict
from flagsite.observability import request_id_var


def _flatten(detail: Any, prefix: str = "") -> list[dict[str, str]]:
    if isinstance(detail, dict):
        out: list[dict[str, str]] = []
        for key, value in detail.items():
            if isinstance(key, int):  # a list's item (ListField, many=True): as in rules[0]
                out.extend(_flatten(value, f"{prefix}[{key}]"))
                continue
            name = "" if key == "non_field_errors" else str(key)
            path = f"{prefix}.{name}" if prefix and name else (prefix or name)
            out.extend(_flatten(value, path))
        return out
    if isinstance(detail, list):
        if all(not isinstance(item, dict | list) for item in detail):
            return [{"path": prefix, "message": str(item)} for item in detail]
        out = []
        for index, item in enumerate(detail):
            out.extend(_flatten(item, f"{prefix}[{index}]"))
        return out
    return [{"path": prefix, "message": str(detail)}]


def errors_response(errors: list[dict[str, str]], code: int = 400) -> Response:
    return Response({"errors": errors}, status=code)


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, ChangeRejected):
        return errors_response(
            [{"path": api_path(e.path), "message": e.message} for e in exc.errors]
        )
    if isinstance(exc, ApprovalRequired):
        return Response(
            {"detail": str(exc), "approvalRequired": True}, status=status.HTTP_409_CONFLICT
        )
    if isinstance(exc, VersionConflict):
        return Response(
            {"detail": str(exc), "currentVersion": exc.current_version},
            status=status.HTTP_409_CONFLICT,
        )
    if isinstance(exc, exceptions.ValidationError):
        return errors_response(_flatten(exc.detail))
    if isinstance(exc, BodyInvalid):
        return errors_response([{"path": exc.path, "message": exc.message}])
    if isinstance(exc, exceptions.ParseError):
        return errors_response([{"path": "", "message": str(exc.detail)}])
    return drf_exception_handler(exc, context)


API_PREFIXES = ("/api/", "/ofrep/")


def is_api_path(path: str) -> bool:
    return path.startswith(API_PREFIXES)


def server_error(request: HttpRequest) -> HttpResponse:
    """handler500: JSON on the API's paths (clients parse it), Django's page elsewhere."""
    if is_api_path(request.path):
        body = {"detail": "Internal server error.", "requestId": request_id_var.get()}
        return JsonResponse(body, status=500)
    return defaults.server_error(request)


def page_not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    if is_api_path(request.path):
        return JsonResponse({"detail": "No such endpoint."}, status=404)
    return defaults.page_not_found(request, exception)


def bad_request(request: HttpRequest, exception: Exception) -> HttpResponse:
    if is_api_path(request.path):
        return JsonResponse({"detail": "Bad request."}, status=400)
    return defaults.bad_request(request, exception)
