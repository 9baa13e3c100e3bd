"""One error shape for the API.

- 400: ``{"errors": [{"path": "rules[0].conditions[1].operator", "message": "..."}]}``; paths
  are relative to the object in the request, in the names the request uses.
- 409: ``{"detail": "...", "currentVersion": n}`` for a stale version, or
  ``{"detail": "...", "approvalRequired": true}`` where the environment needs a change request.
- 401, 403, 404, 405, 429: ``{"detail": "..."}``.
"""

from __future__ import annotations

from typing import Any

from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from flags.api.serializers import api_path
from flags.errors import ApprovalRequired, ChangeRejected, VersionConflict


def _flatten(detail: Any, prefix: str = "") -> list[dict[str, str]]:
    if isinstance(detail, dict):
        out: list[dict[str, str]] = []
        for name, value in detail.items():
            name = "" if name == "non_field_errors" else str(name)
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
    return drf_exception_handler(exc, context)
