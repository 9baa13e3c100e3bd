"""What the evaluation API needs to know about API keys, without importing the apikeys app.

``apikeys`` depends on ``flags`` (a key belongs to an environment, and issuing one is a role
check), so ``flags`` must not depend on ``apikeys``. This module is the seam: flags owns the
shape of an authenticated key and the header parsing; apikeys owns storage, hashing and the
cache, and plugs its resolver in at startup (``ApikeysConfig.ready``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

from django.contrib.auth.models import AnonymousUser
from django.core.exceptions import ImproperlyConfigured
from rest_framework import authentication, exceptions
from rest_framework.request import Request

KEY_PREFIX = "fs_"


@dataclass(frozen=True, slots=True)
class AuthenticatedKey:
    """What a request knows about its key, detached from the ORM so it can be cached."""

    id: int
    kind: str
    environment_id: int
    project_id: int
    environment_key: str
    created_by_id: int | None
    prefix: str


KeyResolver = Callable[[str], Awaitable[AuthenticatedKey | None]]
_resolver: KeyResolver | None = None


def register_resolver(resolver: KeyResolver) -> None:
    """Installs the function that turns a raw secret into its active key (or None)."""
    global _resolver
    _resolver = resolver


KeyPeeker = Callable[[str], AuthenticatedKey | None]
_peeker: KeyPeeker | None = None


def register_peeker(peeker: KeyPeeker) -> None:
    """Installs the query-free lookup of a cached key (trusted or not), for decisions that are
    not about the key's validity, such as the CORS headers of an already authorized response."""
    global _peeker
    _peeker = peeker


def peek_key(raw: str) -> AuthenticatedKey | None:
    return _peeker(raw) if _peeker is not None else None


async def aresolve_key(raw: str) -> AuthenticatedKey | None:
    if _resolver is None:
        raise ImproperlyConfigured("No API key resolver is registered (is 'apikeys' installed?)")
    return await _resolver(raw)


def raw_key(headers: Mapping[str, str]) -> str | None:
    """The key a request presents: ``Authorization: Bearer``, ``X-Flagsite-Key`` or (for
    OpenFeature OFREP providers) ``X-API-Key``."""
    header = headers.get("Authorization", "") or ""
    if header[:7].lower() == "bearer ":
        return header[7:].strip()
    return headers.get("X-Flagsite-Key") or headers.get("X-API-Key")


def request_key(request: Request) -> AuthenticatedKey | None:
    auth = request.auth
    return auth if isinstance(auth, AuthenticatedKey) else None


class AsyncKeyAuthentication(authentication.BaseAuthentication):
    """For the async evaluation views (SDK and client keys only: they act as nobody, so no
    user is loaded). A management key still authenticates; the view's permission refuses it."""

    async def authenticate(  # type: ignore[override]
        self, request: Request
    ) -> tuple[AnonymousUser, AuthenticatedKey] | None:
        raw = raw_key(request.headers)
        if raw is None:
            return None
        if not raw.startswith(KEY_PREFIX):
            raise exceptions.AuthenticationFailed("Malformed API key: expected 'fs_...'.")
        key = await aresolve_key(raw)
        if key is None:
            raise exceptions.AuthenticationFailed("Unknown or revoked API key.")
        return AnonymousUser(), key

    def authenticate_header(self, request: Request) -> str:
        return 'Bearer realm="flagsite"'
