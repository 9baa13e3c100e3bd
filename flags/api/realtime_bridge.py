"""How the ruleset change messages of flags.realtime are read: channels and payloads.

flags.realtime owns publishing; this module only knows how to listen to it.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from flags import realtime


def ruleset_channel_pattern() -> str:
    return realtime.ruleset_channel_pattern()


def parse_ruleset_message(data: bytes) -> tuple[int, int | None] | None:
    """(environment id, version) from one message, or None if it is not a ruleset change."""
    try:
        payload = json.loads(data)
    except ValueError:
        return None
    if not isinstance(payload, dict):
        return None
    env = payload.get("environment")
    version = payload.get("version")
    if not isinstance(env, int):
        return None
    return env, version if isinstance(version, int) else None


def register_local_listener(callback: Callable[[int, int], None]) -> None:
    """Embedded mode (no Redis): flags.realtime calls us in-process instead."""
    realtime.register_listener(callback)
