"""DRF authentication by API key (``Authorization: Bearer fs_...``).

Verified keys are cached in-process for a short time so the evaluation path makes no query;
a revocation publishes an invalidation (see apikeys.services) so it takes effect at once.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from django.contrib.auth.models import AnonymousUser
from rest_framework import authentication, exceptions
from rest_framework.request import Request

from apikeys.models import ApiKey, hash_key

CACHE_SECONDS = 30.0


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


_cache: dict[str, tuple[AuthenticatedKey, float]] = {}
_lock = threading.Lock()


def forget_key(digest: str | None = None) -> None:
    """Drops one cached key (or all): called on revocation and by its pub/sub message."""
    with _lock:
        if digest is None:
            _cache.clear()
        else:
            _cache.pop(digest, None)


def _raw_key(request: Request) -> str | None:
    header = request.headers.get("Authorization", "")
    if header.startswith("Bearer "):
        return header[7:].strip()
    return request.headers.get("X-Flagsite-Key")


def resolve_key(raw: str) -> AuthenticatedKey | None:
    digest = hash_key(raw)
    now = time.monotonic()
    hit = _cache.get(digest)
    if hit is not None and hit[1] > now:
        return hit[0]
    row = (
        ApiKey.objects.select_related("environment")
        .filter(digest=digest, revoked_at__isnull=True)
        .first()
    )
    if row is None:
        forget_key(digest)
        return None
    key = AuthenticatedKey(
        id=row.pk,
        kind=row.kind,
        environment_id=row.environment_id,
        project_id=row.environment.project_id,
        environment_key=row.environment.key,
        created_by_id=row.created_by_id,
        prefix=row.prefix,
    )
    with _lock:
        _cache[digest] = (key, now + CACHE_SECONDS)
    return key


class ApiKeyAuthentication(authentication.BaseAuthentication):
    """Sets ``request.auth`` to an AuthenticatedKey; the user is anonymous for SDK keys."""

    def authenticate(self, request: Request) -> tuple[AnonymousUser, AuthenticatedKey] | None:
        raw = _raw_key(request)
        if raw is None:
            return None
        if not raw.startswith("fs_"):
            raise exceptions.AuthenticationFailed("Malformed API key: expected 'fs_...'.")
        key = resolve_key(raw)
        if key is None:
            raise exceptions.AuthenticationFailed("Unknown or revoked API key.")
        return AnonymousUser(), key

    def authenticate_header(self, request: Request) -> str:
        return 'Bearer realm="flagsite"'
