"""A Server-Sent Events reader for tests: one stream read on a thread, frames in a queue,
each stamped with the wall-clock time it arrived (to compare with another process's clock)."""

from __future__ import annotations

import json
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

import httpx

Frame = dict[str, Any]


class EventStream:
    def __init__(self, url: str, headers: dict[str, str]) -> None:
        self.frames: queue.Queue[Frame] = queue.Queue()
        self.status: int | None = None
        self._client = httpx.Client(timeout=httpx.Timeout(5.0, read=30.0))
        self._thread = threading.Thread(target=self._run, args=(url, headers), daemon=True)
        self._thread.start()

    def _run(self, url: str, headers: dict[str, str]) -> None:
        try:
            with self._client.stream("GET", url, headers=headers) as response:
                self.status = response.status_code
                frame: Frame = {}
                for line in response.iter_lines():
                    if line == "":
                        if frame:
                            frame["received_at"] = time.time()
                            self.frames.put(frame)
                        frame = {}
                    elif not line.startswith(":"):
                        name, _, value = line.partition(":")
                        frame[name] = value.removeprefix(" ")
        except httpx.HTTPError:
            pass

    def next_ruleset(
        self, predicate: Callable[[dict[str, Any]], bool], timeout: float
    ) -> tuple[dict[str, Any], float]:
        """The first ruleset event whose data satisfies ``predicate``, and when it arrived."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no matching ruleset event")
            try:
                frame = self.frames.get(timeout=left)
            except queue.Empty:
                continue
            if frame.get("event") == "ruleset":
                data: dict[str, Any] = json.loads(frame["data"])
                if predicate(data):
                    return data, float(frame["received_at"])

    def close(self) -> None:
        self._client.close()
