"""limit/offset pagination that refuses what it cannot read (DRF's silently ignores it)."""

from __future__ import annotations

from typing import Any

from rest_framework.exceptions import ValidationError
from rest_framework.pagination import LimitOffsetPagination
from rest_framework.request import Request


class Pagination(LimitOffsetPagination):
    max_limit = 1000

    def _checked(self, request: Request, name: str, minimum: int, maximum: int | None) -> None:
        for raw in request.query_params.getlist(name):
            number = int(raw) if raw.isascii() and raw.isdigit() else -1
            if number < minimum or (maximum is not None and number > maximum):
                top = f" and at most {maximum}" if maximum is not None else ""
                raise ValidationError({name: [f"A whole number of at least {minimum}{top}."]})

    def paginate_queryset(self, queryset: Any, request: Request, view: Any = None) -> Any:
        self._checked(request, self.limit_query_param, 1, self.max_limit)
        self._checked(request, self.offset_query_param, 0, None)
        return super().paginate_queryset(queryset, request, view)

    def get_schema_operation_parameters(self, view: Any) -> list[dict[str, Any]]:
        parameters: list[dict[str, Any]] = super().get_schema_operation_parameters(view)
        for parameter in parameters:
            minimum = 1 if parameter["name"] == self.limit_query_param else 0
            parameter["schema"]["minimum"] = minimum
            if minimum:
                parameter["schema"]["maximum"] = self.max_limit
        return parameters
