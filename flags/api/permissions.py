"""Which kind of API key each endpoint accepts, with a 403 body that says why."""

from __future__ import annotations

from rest_framework.permissions import BasePermission
from rest_framework.request import Request
from rest_framework.views import APIView

from flags.api.keys import request_key

__all__ = ["EvaluationKey", "ManagementAccess", "ServerKey", "request_key"]


class _KeyKind(BasePermission):
    kinds: tuple[str, ...] = ()
    message = "This endpoint does not accept this kind of API key."

    def has_permission(self, request: Request, view: APIView) -> bool:
        key = request_key(request)
        if key is None:
            # No key at all: DRF turns this into 401 when the request is unauthenticated.
            self.message = f"This endpoint needs a {' or '.join(self.kinds)} API key."
            return False
        if key.kind not in self.kinds:
            self.message = (
                f"A {key.kind} key cannot be used here: this endpoint needs a "
                f"{' or '.join(self.kinds)} API key."
            )
            return False
        return True


class EvaluationKey(_KeyKind):
    kinds = ("server", "client")


class ServerKey(_KeyKind):
    kinds = ("server",)


class ManagementAccess(BasePermission):
    """A management key, or a signed-in user (the admin's session); roles are checked later."""

    message = "Management needs a management API key or a signed-in user."

    def has_permission(self, request: Request, view: APIView) -> bool:
        key = request_key(request)
        if key is not None and key.kind != "management":
            self.message = f"A {key.kind} key cannot be used for management: use a management key."
            return False
        return bool(request.user and request.user.is_authenticated)
