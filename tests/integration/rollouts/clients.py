"""What clients see of a rollback: an open SSE stream and a running Python SDK, each stamped
with the wall-clock time the rollback reached it (to compare with the worker's write)."""

from __future__ import annotations

import threading
import time
from typing import Any

from flagsite_sdk import FlagsiteClient

from tests.integration.rollouts.scenario import FLAG
from tests.support.sse import EventStream


def on_weight(data: dict[str, Any]) -> int:
    serve = data["ruleset"]["flags"][FLAG]["defaultServe"]
    weight: int = serve["rollout"]["variants"][0]["weight"]
    return weight


class Watchers:
    """One SSE stream and one SDK client on ``url``, opened while the rollout serves stage 1."""

    def __init__(self, url: str, server_key: str) -> None:
        headers = {"Authorization": f"Bearer {server_key}"}
        self.stream = EventStream(f"{url}/api/v1/sdk/stream", headers)
        first, _ = self.stream.next_ruleset(lambda d: True, 30)
        assert on_weight(first) > 0, "the rollout serves its first stage"
        self.sdk = FlagsiteClient(
            url, server_key, init_timeout=10, record_exposures=False, stream_read_timeout=5
        )
        assert self.sdk.wait_until_ready(10)
        self.context = self._flag_on_context()
        self.sdk_saw_off_at: float | None = None
        self._off = threading.Event()
        self.sdk.on_change(self._changed)

    def _flag_on_context(self) -> dict[str, str]:
        """A user the first stage gives the flag to (found by the SDK's own evaluation)."""
        for i in range(10_000):
            context = {"targetingKey": f"user-{i}"}
            if self.sdk.variant(FLAG, context) == "on":
                return context
        raise AssertionError("nobody gets the flag in the first stage")

    def _changed(self, _snapshot: object) -> None:
        # The SDK calls this when it has installed a new ruleset: what is_enabled serves now.
        if self.sdk_saw_off_at is None and self.sdk.variant(FLAG, self.context) == "off":
            self.sdk_saw_off_at = time.time()
            self._off.set()

    def wait_for_rollback(self, timeout: float) -> tuple[float, float]:
        """When the stream delivered the rolled-back ruleset, and when the SDK served it."""
        _, stream_at = self.stream.next_ruleset(lambda d: on_weight(d) == 0, timeout)
        assert self._off.wait(timeout), "the SDK never served the rolled-back flag"
        assert self.sdk_saw_off_at is not None
        assert self.sdk.variant(FLAG, self.context) == "off"
        return stream_at, self.sdk_saw_off_at

    def close(self) -> None:
        self.stream.close()
        self.sdk.close(timeout=2)
