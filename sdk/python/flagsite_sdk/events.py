"""Exposure events: recorded on the evaluation path for the price of a dict probe and an append,
deduplicated, batched and sent by one background thread.

Memory is bounded twice: the dedup table keeps at most ``max_dedup_keys`` entries (oldest go
first) and is cleared every ``dedup_interval``; the outgoing queue holds at most ``max_queue``
events, and what does not fit is counted as dropped, never buffered.
"""

from __future__ import annotations

import logging
import random
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx

from flagsite_sdk.transport import Transport

log = logging.getLogger("flagsite_sdk")

Exposure = tuple[str, str, str | None, float]  # flag, variant, context key, epoch seconds


@dataclass(frozen=True, slots=True)
class EventOptions:
    flush_interval: float = 5.0
    batch_size: int = 500
    max_queue: int = 10_000
    dedup_interval: float = 300.0
    max_dedup_keys: int = 100_000
    max_attempts: int = 5
    retry_initial: float = 0.5
    retry_max: float = 10.0


@dataclass(frozen=True, slots=True)
class EventStats:
    recorded: int
    deduplicated: int
    dropped: int
    sent: int
    rejected: int
    failed: int
    queued: int


class ExposureRecorder:
    def __init__(self, transport: Transport | None, options: EventOptions) -> None:
        self.options = options
        self._transport = transport
        self._seen: dict[tuple[str | None, str, str], None] = {}
        self._seen_since = time.monotonic()
        self._queue: deque[Exposure] = deque()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._counts_lock = threading.Lock()
        self._deduplicated = 0
        self._dropped = 0
        self._sent = 0
        self._rejected = 0
        self._failed = 0
        self._send_lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="flagsite-events", daemon=True)
        self._thread.start()

    # --- the evaluation path -------------------------------------------------------------------

    def record(self, flag: str, variant: str, context_key: str | None) -> None:
        key = (context_key, flag, variant)
        seen = self._seen
        if key in seen:
            # Counted without a lock: the figure is diagnostic, a lost increment is harmless.
            self._deduplicated += 1
            return
        if len(seen) >= self.options.max_dedup_keys:
            try:
                del seen[next(iter(seen))]
            except (KeyError, StopIteration, RuntimeError):
                pass  # another thread evicted or reset it first
        seen[key] = None
        queue = self._queue
        if len(queue) >= self.options.max_queue:
            with self._counts_lock:
                self._dropped += 1
            return
        queue.append((flag, variant, context_key, time.time()))
        if len(queue) == self.options.batch_size:
            self._wake.set()

    # --- the background thread -----------------------------------------------------------------

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.options.flush_interval)
            self._wake.clear()
            if self._stop.is_set():
                break
            self._maybe_reset_dedup()
            self.flush(retry=True)

    def _maybe_reset_dedup(self) -> None:
        now = time.monotonic()
        if now - self._seen_since >= self.options.dedup_interval:
            self._seen = {}
            self._seen_since = now

    def flush(self, *, retry: bool = True, deadline: float | None = None) -> None:
        """Sends everything queued now, in batches; on shutdown with a deadline."""
        with self._send_lock:
            while self._queue:
                batch = self._take(self.options.batch_size)
                if batch:
                    self._send(batch, retry=retry, deadline=deadline)
                if deadline is not None and time.monotonic() >= deadline:
                    return

    def _take(self, n: int) -> list[Exposure]:
        batch: list[Exposure] = []
        queue = self._queue
        while queue and len(batch) < n:
            batch.append(queue.popleft())
        return batch

    def _send(self, batch: list[Exposure], *, retry: bool, deadline: float | None) -> None:
        if self._transport is None:
            return
        # One id for every attempt: the server deduplicates a batch it has already stored.
        payload = build_payload(uuid.uuid4().hex, batch, self.dropped)
        delay = self.options.retry_initial
        for attempt in range(1, self.options.max_attempts + 1):
            try:
                response = self._transport.post_events(payload)
            except httpx.HTTPError as exc:
                log.debug("flagsite: sending %d events failed: %s", len(batch), exc)
            else:
                if response.status_code < 300:
                    self._count_sent(len(batch))
                    return
                if response.status_code == 400:
                    self._count_partial(response, len(batch))
                    return
                if 400 < response.status_code < 500 and response.status_code != 429:
                    log.warning("flagsite: events endpoint refused a batch: HTTP %s",
                                response.status_code)
                    break
            if not retry or attempt == self.options.max_attempts:
                break
            pause = random.uniform(delay / 2, delay)
            if deadline is not None and time.monotonic() + pause > deadline:
                break
            if self._stop.wait(pause) and deadline is None:
                break
            delay = min(delay * 2, self.options.retry_max)
        with self._counts_lock:
            self._failed += len(batch)

    def _count_sent(self, n: int) -> None:
        with self._counts_lock:
            self._sent += n

    def _count_partial(self, response: httpx.Response, n: int) -> None:
        bad = rejected_count(response, n)
        log.warning("flagsite: the server rejected %d of %d events", bad, n)
        with self._counts_lock:
            self._rejected += bad
            self._sent += n - bad

    def close(self, timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
        self.flush(retry=True, deadline=deadline)

    @property
    def dropped(self) -> int:
        return self._dropped

    def stats(self) -> EventStats:
        with self._counts_lock:
            return EventStats(
                recorded=self._sent + self._rejected + self._failed + len(self._queue),
                deduplicated=self._deduplicated,
                dropped=self._dropped,
                sent=self._sent,
                rejected=self._rejected,
                failed=self._failed,
                queued=len(self._queue),
            )


def build_payload(batch_id: str, batch: list[Exposure], dropped: int) -> dict[str, Any]:
    return {
        "batchId": batch_id,
        "events": [
            {
                "type": "exposure",
                "flag": flag,
                "variant": variant,
                "contextKey": context_key,
                "timestamp": datetime.fromtimestamp(ts, UTC).isoformat(),
            }
            for flag, variant, context_key, ts in batch
        ],
        "sdk": {"name": "flagsite-python", "droppedEvents": dropped},
    }


def rejected_count(response: httpx.Response, batch_size: int) -> int:
    """How many events a 400 names as bad; the whole batch when the body says nothing usable."""
    try:
        body = response.json()
    except ValueError:
        return batch_size
    errors = body.get("errors") if isinstance(body, dict) else None
    if isinstance(errors, list | dict) and errors:
        return min(len(errors), batch_size)
    return batch_size
