"""DRF authentication by API key (``Authorization: Bearer fs_...``, ``X-Flagsite-Key`` or, for
OpenFeature OFREP providers, ``X-API-Key``).

Verified keys are cached in-process so the evaluation path makes no query. The cache is only
trusted while something keeps it honest: the invalidation listener is subscribed (a
revocation publishes a message every process applies at once; flags.evaluation's listener
carries our revocation channel, plugged in by ApikeysConfig.ready), or the periodic check
(flags.healing, with apikeys.invalidation.revalidate_cached_keys registered on it) re-read
every cached key in the last TRUST_SECONDS. The check is what catches a revocation written
where no message is sent (the embedded mode, a shell) or whose message was lost. When neither
holds, every request goes back to the database. Use is recorded off the hot path
(apikeys.usage). The async evaluation views authenticate with
flags.api.keys.AsyncKeyAuthentication, which calls ``aresolve_key``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from rest_framework import authentication, exceptions
from rest_framework.request import Request

from apikeys import usage
from apikeys.models import ApiKey, hash_key
from flags.api.keys import KEY_PREFIX, AuthenticatedKey, raw_key
from flagsite.db import run_in_db_thread

__all__ = ["ApiKeyAuthentication", "AuthenticatedKey", "aresolve_key", "raw_key", "resolve_key"]

CACHE_SECONDS = 300.0
# Unknown keys are remembered briefly so a flood of bad keys cannot become a flood of queries.
NEGATIVE_CACHE_SECONDS = 2.0


# A revoked key stops working at most this long after the last periodic check, if the check
# itself stalls; while it runs (about every second) the delay is one interval.
TRUST_SECONDS = 2.0

_cache: dict[str, tuple[AuthenticatedKey | None, float]] = {}
_lock = threading.Lock()
_invalidation_live = threading.Event()
_revalidated_at = -1e9  # time.monotonic() of the last completed periodic check
_cache_guards: list[Callable[[], None]] = []


def set_invalidation_live(live: bool) -> None:
    """Called by the listener: the cache may be trusted only while revocations can reach us."""
    if live:
        _invalidation_live.set()
    else:
        _invalidation_live.clear()
        forget_key(None)


def mark_revalidated(at: float) -> None:
    """The periodic check re-read every key cached before ``at`` (a time.monotonic())."""
    global _revalidated_at
    _revalidated_at = at


def register_cache_guard(start: Callable[[], None]) -> None:
    """``start`` runs whenever a key is cached: it makes sure the periodic check is running
    (flags registers it; apikeys cannot import flags)."""
    _cache_guards.append(start)


def cached_keys() -> dict[int, str]:
    """Key id -> digest of every key cached as active (for the periodic check)."""
    with _lock:
        return {hit[0].id: digest for digest, hit in _cache.items() if hit[0] is not None}


def peek_key(raw: str) -> AuthenticatedKey | None:
    """The cached key for a secret, trusted or not, never querying: for decisions that are not
    about the key's validity (the CORS headers of a response its view already authorized)."""
    hit = _cache.get(hash_key(raw))
    return hit[0] if hit is not None else None


def _cache_trusted() -> bool:
    if _invalidation_live.is_set():
        return True
    return time.monotonic() - _revalidated_at < TRUST_SECONDS


def forget_key(digest: str | None = None) -> None:
    """Drops one cached key (or all): called on revocation and by its pub/sub message."""
    with _lock:
        if digest is None:
            _cache.clear()
        else:
            _cache.pop(digest, None)


def cached_key(raw: str) -> tuple[bool, AuthenticatedKey | None]:
    """(True, key or None) when the cache can answer for this secret; never queries."""
    hit = _cache.get(hash_key(raw))
    if hit is not None and hit[1] > time.monotonic() and _cache_trusted():
        if hit[0] is not None:
            usage.touch(hit[0].id)
        return True, hit[0]
    return False, None


def _load_key(raw: str) -> AuthenticatedKey | None:
    digest = hash_key(raw)
    row = (
        ApiKey.objects.select_related("environment")
        .filter(digest=digest, revoked_at__isnull=True)
        .first()
    )
    key = None
    if row is not None:
        key = AuthenticatedKey(
            id=row.pk,
            kind=row.kind,
            environment_id=row.environment_id,
            project_id=row.environment.project_id,
            environment_key=row.environment.key,
            created_by_id=row.created_by_id,
            prefix=row.prefix,
        )
        usage.touch(key.id)
    ttl = CACHE_SECONDS if key is not None else NEGATIVE_CACHE_SECONDS
    with _lock:
        _cache[digest] = (key, time.monotonic() + ttl)
    if key is not None:
        for start in _cache_guards:
            start()
    return key


def resolve_key(raw: str) -> AuthenticatedKey | None:
    """The active key for a raw secret, or None; from the cache when it can be trusted."""
    known, key = cached_key(raw)
    return key if known else _load_key(raw)


async def aresolve_key(raw: str) -> AuthenticatedKey | None:
    """``resolve_key`` for the event loop: a cache hit stays on it, a miss queries on a thread."""
    known, key = cached_key(raw)
    return key if known else await run_in_db_thread(_load_key, raw)


def key_user(key: AuthenticatedKey) -> AbstractBaseUser | AnonymousUser:
    """Management keys act as the user who created them; SDK keys act as nobody."""
    if key.kind != ApiKey.Kind.MANAGEMENT:
        return AnonymousUser()
    user = None
    if key.created_by_id is not None:
        user = get_user_model().objects.filter(pk=key.created_by_id, is_active=True).first()
    if user is None:
        raise exceptions.AuthenticationFailed(
            "This management key's creator no longer exists or is inactive."
        )
    return user


class ApiKeyAuthentication(authentication.BaseAuthentication):
    """Sets ``request.auth`` to an AuthenticatedKey and ``request.user`` as ``key_user`` says."""

    def authenticate(
        self, request: Request
    ) -> tuple[AbstractBaseUser | AnonymousUser, AuthenticatedKey] | None:
        raw = raw_key(request.headers)
        if raw is None:
            return None
        if not raw.startswith(KEY_PREFIX):
            raise exceptions.AuthenticationFailed("Malformed API key: expected 'fs_...'.")
        key = resolve_key(raw)
        if key is None:
            raise exceptions.AuthenticationFailed("Unknown or revoked API key.")
        return key_user(key), key

    def authenticate_header(self, request: Request) -> str:
        return 'Bearer realm="flagsite"'
