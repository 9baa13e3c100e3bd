"""Revocation reaches every process at once: a pub/sub message each process applies."""

from __future__ import annotations

import logging

import redis
from django.conf import settings

from apikeys.authentication import forget_key

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
