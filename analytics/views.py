"""HTTP entry points of analytics; the work happens in analytics.services."""

from __future__ import annotations

from typing import Any

from rest_framework import permissions, status
from rest_framework.parsers import JSONParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from analytics import services
from analytics.serializers import BatchInvalidError
from apikeys.authentication import ApiKeyAuthentication, AuthenticatedKey

EVENT_KEY_KINDS = frozenset({"server", "client"})


class CanSendEvents(permissions.BasePermission):
    message = "Events need a server or client API key."

    def has_permission(self, request: Request, view: Any) -> bool:
        key = request.auth
        return isinstance(key, AuthenticatedKey) and key.kind in EVENT_KEY_KINDS


class EventBatchView(APIView):
    """POST a batch of exposure and metric events; all stored or none."""

    authentication_classes = [ApiKeyAuthentication]
    permission_classes = [CanSendEvents]
    parser_classes = [JSONParser]

    def post(self, request: Request) -> Response:
        key = request.auth
        assert isinstance(key, AuthenticatedKey)
        try:
            result = services.ingest(key.environment_id, request.data)
        except BatchInvalidError as invalid:
            return Response({"errors": invalid.errors}, status=status.HTTP_400_BAD_REQUEST)
        return Response(
            {"accepted": result.accepted, "duplicate": result.duplicate},
            status=status.HTTP_202_ACCEPTED,
        )
