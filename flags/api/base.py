"""The base view: JSON only, the API's error shape, rate limits per key."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rest_framework.parsers import JSONParser
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response
from rest_framework.views import APIView

from flags.api import errors


class ApiView(APIView):
    renderer_classes = [JSONRenderer]
    parser_classes = [JSONParser]

    def get_exception_handler(self) -> Callable[[Exception, dict[str, Any]], Response | None]:
        return errors.exception_handler
