"""The evaluation context of a request, and the per-request evaluator the middleware attaches."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest
from django.utils.module_loading import import_string

from flagsite_sdk.client import FlagsiteClient
from flagsite_sdk.django.conf import flagsite_settings, get_client
from flagsite_sdk.engine import EvaluationDetails

DEFAULT_USER_ATTRIBUTES = {"email": "email", "isStaff": "is_staff"}


def build_context(request: HttpRequest, user: Any = None) -> dict[str, Any]:
    """``targetingKey`` is the user's primary key; attributes come from USER_ATTRIBUTES, then
    the optional CONTEXT_PROCESSOR may add or change anything. ``user`` overrides
    ``request.user`` (async views pass the result of ``await request.auser()``)."""
    conf = flagsite_settings()
    if user is None:
        user = getattr(request, "user", None)
    context: dict[str, Any] = {}
    if user is not None and getattr(user, "is_authenticated", False):
        context["targetingKey"] = str(user.pk)
        for attribute, field in conf.get("USER_ATTRIBUTES", DEFAULT_USER_ATTRIBUTES).items():
            value = getattr(user, field, None)
            if value is not None and value != "":
                context[attribute] = value
    else:
        context["anonymous"] = True
    processor = conf.get("CONTEXT_PROCESSOR")
    if processor:
        extra = import_string(processor) if isinstance(processor, str) else processor
        context = extra(request, context) or context
    return context


class RequestFlags:
    """``request.flags``: the client's evaluations with the request's context filled in. The
    context is built on first use, so requests that check no flag pay nothing."""

    def __init__(self, request: HttpRequest, client: FlagsiteClient | None = None) -> None:
        self._request = request
        self._client = client
        self._context: dict[str, Any] | None = None

    @property
    def client(self) -> FlagsiteClient:
        if self._client is None:
            self._client = get_client()
        return self._client

    @property
    def context(self) -> dict[str, Any]:
        if self._context is None:
            self._context = build_context(self._request)
        return self._context

    async def aprepare(self) -> None:
        """Builds the context in async code, where ``request.user`` would query the database
        synchronously inside the event loop."""
        if self._context is None:
            auser = getattr(self._request, "auser", None)
            user = await auser() if auser is not None else None
            self._context = build_context(self._request, user)

    def is_enabled(self, key: str, default: bool = False) -> bool:
        return self.client.is_enabled(key, self.context, default)

    def variant(self, key: str, default: str | None = None) -> str | None:
        return self.client.variant(key, self.context, default)

    def value(self, key: str, default: Any = None) -> Any:
        return self.client.details(key, self.context, default).value

    def details(self, key: str, default: Any = None) -> EvaluationDetails:
        return self.client.details(key, self.context, default)


def flags_for(request: HttpRequest) -> RequestFlags:
    """The request's evaluator: the middleware's, or a new one if it is not installed."""
    flags = getattr(request, "flags", None)
    if isinstance(flags, RequestFlags):
        return flags
    flags = RequestFlags(request)
    request.flags = flags  # type: ignore[attr-defined]
    return flags
