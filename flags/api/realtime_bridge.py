"""Where the ruleset change messages of flags.realtime are read: channel names and payloads.

flags.realtime owns publishing; this module only knows how to listen to it.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from flags import realtime

_PROBE_ID = 987654321


def ruleset_channel_pattern() -> str:
    """A psubscribe pattern matching every environment's ruleset channel."""
    probe = realtime.ruleset_channel(_PROBE_ID)
    return probe.replace(str(_PROBE_ID), "*")


def parse_ruleset_message(channel: bytes, data: bytes) -> tuple[int, int | None] | None:
    """(environment id, version) from one message, or None if it is not a ruleset change."""
    try:
        payload = json.loads(data)
    except ValueError:
        return None
    if not isinstance(payload, dict):
        return None
    env = payload.get("environment_id", payload.get("environment"))
    version = payload.get("version")
    if not isinstance(env, int):
        return None
    return env, version if isinstance(version, int) else None


def register_local_listener(callback: Callable[[int, int | None], None]) -> None:
    """Embedded mode (no Redis): flags.realtime calls us in-process instead."""
    realtime.register_listener(callback)
