"""Django's middleware, run on the event loop under ASGI instead of on a thread.

Django's ``MiddlewareMixin.__acall__`` wraps every ``process_request`` and ``process_response``
in ``sync_to_async``: with seven such classes a request made fourteen thread hops, serialized on
one thread per worker, before any view ran. These hooks only compute headers, read cookies and
install lazy objects, so they are called inline here. The one hook that may do I/O, saving a
modified session, still goes to a thread.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib.auth import middleware as auth
from django.contrib.messages import middleware as messages
from django.contrib.sessions import middleware as sessions
from django.http import HttpRequest
from django.http.response import HttpResponseBase
from django.middleware import clickjacking, common, csrf, security


class _Inline:
    """Mixed into a MiddlewareMixin subclass: its hooks run inline when the stack is async."""

    get_response: Any

    async def __acall__(self, request: HttpRequest) -> HttpResponseBase:
        response = None
        process_request = getattr(self, "process_request", None)
        if process_request is not None:
            response = process_request(request)
        if response is None:
            response = await self.get_response(request)
        process_response = getattr(self, "process_response", None)
        if process_response is not None:
            response = await self._respond(process_response, request, response)
        return response

    async def _respond(
        self, hook: Callable[..., Any], request: HttpRequest, response: Any
    ) -> HttpResponseBase:
        return hook(request, response)  # type: ignore[no-any-return]


class SecurityMiddleware(_Inline, security.SecurityMiddleware):
    pass


class CommonMiddleware(_Inline, common.CommonMiddleware):
    pass


class AuthenticationMiddleware(_Inline, auth.AuthenticationMiddleware):
    """Installs a lazy ``request.user``; the session is only read if someone asks."""


class MessageMiddleware(_Inline, messages.MessageMiddleware):
    """Messages persist in a cookie or the session dict; the session itself is saved later."""


class XFrameOptionsMiddleware(_Inline, clickjacking.XFrameOptionsMiddleware):
    pass


class CsrfViewMiddleware(_Inline, csrf.CsrfViewMiddleware):
    """Tokens live in a cookie (CSRF_USE_SESSIONS is off), so every check is pure computation.

    ``process_view`` is async so Django does not wrap it in ``sync_to_async`` either.
    """

    async def process_view(  # type: ignore[override]
        self,
        request: HttpRequest,
        callback: Callable[..., Any],
        callback_args: tuple[Any, ...],
        callback_kwargs: dict[str, Any],
    ) -> HttpResponseBase | None:
        return super().process_view(request, callback, callback_args, callback_kwargs)


class SessionMiddleware(_Inline, sessions.SessionMiddleware):
    """The session store is lazy; only saving a modified session touches the database."""

    async def _respond(
        self, hook: Callable[..., Any], request: HttpRequest, response: Any
    ) -> HttpResponseBase:
        session = getattr(request, "session", None)
        if session is not None and (session.modified or settings.SESSION_SAVE_EVERY_REQUEST):
            return await sync_to_async(hook, thread_sensitive=True)(request, response)  # type: ignore[no-any-return]
        return hook(request, response)  # type: ignore[no-any-return]
