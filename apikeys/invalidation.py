"""Revocation reaches every process: a pub/sub message each process applies at once, and a
periodic re-read of the cached keys (revalidate_cached_keys) for when no message arrives."""

from __future__ import annotations

import logging
import time

import redis
from django.conf import settings

from apikeys import authentication
from apikeys.authentication import forget_key
from apikeys.models import ApiKey

log = logging.getLogger(__name__)


def revoked_channel() -> str:
    return f"{settings.REDIS_PREFIX}:apikeys:revoked"


def publish_revocation(digest: str) -> None:
    """Drops the key here and tells every other process; called after the revocation commits."""
    forget_key(digest)
    if not settings.REDIS_URL:
        return
    client = redis.Redis.from_url(settings.REDIS_URL)
    try:
        client.publish(revoked_channel(), digest)
    except redis.RedisError:
        # The cache entries expire on their own (authentication.CACHE_SECONDS); say so loudly.
        log.exception("could not publish the revocation of an API key")
    finally:
        client.close()


def apply_message(data: bytes) -> None:
    forget_key(data.decode() if data else None)


def forget_all() -> None:
    forget_key(None)


def revalidate_cached_keys() -> int:
    """One query: forgets every cached key that is no longer active (revoked or deleted).

    Returns how many were forgotten. A key cached after the id list was taken is checked
    next time; one revoked before it was cached was never cached as active.
    """
    started = time.monotonic()
    cached = authentication.cached_keys()
    gone: set[int] = set()
    if cached:
        active = set(
            ApiKey.objects.filter(pk__in=cached, revoked_at__isnull=True).values_list(
                "pk", flat=True
            )
        )
        gone = set(cached) - active
        for key_id in gone:
            forget_key(cached[key_id])
    authentication.mark_revalidated(started)
    return len(gone)
