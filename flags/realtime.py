"""Announces new ruleset versions: Redis pub/sub between processes, listeners within one.

Called from transaction.on_commit only, so nobody hears of a version that was rolled back.
The subscriber side lives in flags.evaluation.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from functools import cache

import redis
from django.conf import settings

logger = logging.getLogger(__name__)

Listener = Callable[[int, int], None]
_listeners: list[Listener] = []
_lock = threading.Lock()


def ruleset_channel(environment_id: int) -> str:
    return f"{settings.REDIS_PREFIX}:ruleset:{environment_id}"


def ruleset_channel_pattern() -> str:
    """Pattern matching every environment's channel, for one psubscribe per process."""
    return f"{settings.REDIS_PREFIX}:ruleset:*"


def register_listener(callback: Listener) -> Callable[[], None]:
    """Calls ``callback(environment_id, version)`` on every publish in this process.

    Returns a function that removes it again.
    """
    with _lock:
        _listeners.append(callback)

    def unregister() -> None:
        with _lock:
            if callback in _listeners:
                _listeners.remove(callback)

    return unregister


@cache
def _client(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)


def publish_ruleset(environment_id: int, version: int) -> None:
    """Tells every process that ``environment_id`` now serves ``version``.

    Never raises: the change is committed already, and subscribers also poll the version.
    """
    message = json.dumps({"environment": environment_id, "version": version})
    if settings.REDIS_URL:
        try:
            _client(settings.REDIS_URL).publish(ruleset_channel(environment_id), message)
        except redis.RedisError:
            logger.exception("could not publish ruleset %s v%s", environment_id, version)
    with _lock:
        listeners = list(_listeners)
    for listener in listeners:
        try:
            listener(environment_id, version)
        except Exception:
            logger.exception("ruleset listener failed")
