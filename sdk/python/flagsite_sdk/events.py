"""Exposure events: recorded on the evaluation path for the price of a dict probe and an append,
deduplicated, batched and sent by one background thread.

Each exposure carries the context's *units* for the flag: the values of the attributes its
rollouts bucket by (``bucketBy``, e.g. ``{"accountId": "acct-7"}``), so the server can analyse
a rollout per randomization unit rather than per targeting key.

Memory is bounded twice: each flag's dedup table keeps at most ``max_dedup_keys`` context keys
(oldest go first) and is cleared every ``dedup_interval``; the outgoing queue holds at most
``max_queue`` events, and what does not fit is counted as dropped, never buffered.
"""

from __future__ import annotations

import contextlib
import logging
import random
import threading
import time
import uuid
from collections import deque
from collections.abc import Hashable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx

from flagsite_sdk.engine.operators import TARGETING_KEY
from flagsite_sdk.transport import Transport

log = logging.getLogger("flagsite_sdk")

# flag, variant, context key, epoch seconds, units (None: the flag buckets by the key only)
Exposure = tuple[str, str, str, float, dict[str, str] | None]
Units = dict[str, str]

# The server's bounds on an event's units (analytics.serializers): what does not fit is left
# out here rather than have the whole event refused.
MAX_UNITS = 8
MAX_UNIT_NAME = 100
MAX_UNIT_VALUE = 256


def bucket_attributes(flag: Mapping[str, Any]) -> tuple[str, ...]:
    """The attributes a flag document's rollouts bucket by (default serve and rules), other
    than the targeting key (every event carries that as its ``context_key``)."""
    serves = [flag.get("defaultServe")]
    serves += [rule.get("serve") for rule in flag.get("rules") or () if isinstance(rule, Mapping)]
    found: dict[str, None] = {}
    for serve in serves:
        rollout = serve.get("rollout") if isinstance(serve, Mapping) else None
        if isinstance(rollout, Mapping):
            attribute = rollout.get("bucketBy", TARGETING_KEY)
            usable = isinstance(attribute, str) and 0 < len(attribute) <= MAX_UNIT_NAME
            if usable and attribute != TARGETING_KEY:
                found[attribute] = None
    return tuple(found)[:MAX_UNITS]


def units_of(context: Mapping[str, Any], attributes: Iterable[str]) -> Units:
    """The context's value of each attribute, as the engine buckets on it: a string as it is,
    an integer as its digits; absent, empty, too long or of another type, it is left out (the
    engine could not bucket on it either, so the event says the unit is missing)."""
    units: Units = {}
    for attribute in attributes:
        value = context.get(attribute)
        if type(value) is int:
            value = str(value)
        if type(value) is str and 0 < len(value) <= MAX_UNIT_VALUE:
            units[attribute] = value
            if len(units) == MAX_UNITS:
                break
    return units


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
    dropped: int
    sent: int
    rejected: int
    failed: int
    queued: int


class ExposureRecorder:
    def __init__(self, transport: Transport | None, options: EventOptions) -> None:
        self.options = options
        self._transport = transport
        # Flag -> {context key: variant last recorded} this interval. One table per flag, so
        # the evaluation path, which holds each flag's table next to its resolver, makes one
        # probe and builds nothing. Tables are cleared in place, never replaced.
        self.seen: dict[str, dict[Hashable, str]] = {}
        # Flag -> the attributes its rollouts bucket by (beside the targeting key), replaced
        # whole with each ruleset (FlagsiteClient._install); read only for unseen contexts.
        self.unit_attributes: Mapping[str, tuple[str, ...]] = {}
        self._seen_since = time.monotonic()
        self._queue: deque[Exposure] = deque()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._counts_lock = threading.Lock()
        self._dropped = 0
        self._reported_drops = 0  # in the log
        self._drops_sent = 0  # to the server, in a stored batch
        self._sent = 0
        self._rejected = 0
        self._failed = 0
        self._send_lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="flagsite-events", daemon=True)
        self._thread.start()

    # --- the evaluation path -------------------------------------------------------------------

    def record(self, flag: str, variant: str, context: Mapping[str, Any]) -> None:
        """Queues one exposure of ``variant`` to the context's targeting key, unless this
        context saw it within the dedup interval. Contexts without a key are not recorded:
        an exposure nobody can be attributed to cannot feed an experiment."""
        context_key = context.get("targetingKey") or context.get("userId")
        if context_key and self.table(flag).get(context_key) != variant:
            self.record_unseen(context_key, flag, variant, context)

    def table(self, flag: str) -> dict[Hashable, str]:
        """The dedup table of one flag (context key -> variant), created on first use."""
        table = self.seen.get(flag)
        return table if table is not None else self.seen.setdefault(flag, {})

    def record_unseen(
        self, context_key: Hashable, flag: str, variant: str | None, context: Mapping[str, Any]
    ) -> None:
        """The part of ``record`` after the dedup probe, which FlagsiteClient.is_enabled
        inlines to save a call on the common, already-seen path."""
        if variant is None:
            return
        attributes = self.unit_attributes.get(flag)
        units = units_of(context, attributes) if attributes else None
        table = self.table(flag)
        if context_key not in table and len(table) >= self.options.max_dedup_keys:
            # Another thread may have evicted the same key, or cleared the table, first.
            with contextlib.suppress(KeyError, StopIteration, RuntimeError):
                del table[next(iter(table))]
        table[context_key] = variant
        queue = self._queue
        if len(queue) >= self.options.max_queue:
            with self._counts_lock:
                self._dropped += 1
            return
        queue.append((flag, variant, str(context_key), time.time(), units or None))
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
            self._report_drops()

    def _report_drops(self) -> None:
        dropped = self._dropped
        if dropped > self._reported_drops:
            log.warning(
                "flagsite: dropped %d exposure events (queue full at %d); %d in total",
                dropped - self._reported_drops,
                self.options.max_queue,
                dropped,
            )
            self._reported_drops = dropped

    def _maybe_reset_dedup(self) -> None:
        now = time.monotonic()
        if now - self._seen_since >= self.options.dedup_interval:
            for table in list(self.seen.values()):
                table.clear()
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
        # One id for every attempt: the server stores a batch id once, so a retry after a lost
        # response cannot double-count. A 400 stores nothing, so the id stays valid for the rest.
        batch_id = uuid.uuid4().hex
        # Drops ride along with the batch so ops see them on the server, not only in our log.
        # Under the send lock, so no other batch reports the same drops.
        with self._counts_lock:
            drops = self._dropped - self._drops_sent
        delay = self.options.retry_initial
        for attempt in range(1, self.options.max_attempts + 1):
            try:
                response = self._transport.post_events(build_payload(batch_id, batch, drops))
            except httpx.HTTPError as exc:
                log.debug("flagsite: sending %d events failed: %s", len(batch), exc)
            else:
                status = response.status_code
                if status < 300:
                    self._count(sent=len(batch), drops_sent=drops)
                    return
                if status == 400:
                    batch = self._without_rejected(response, batch)
                    if not batch:
                        return
                    continue
                if 400 < status < 500 and status not in (408, 429):
                    log.warning("flagsite: the events endpoint refused a batch: HTTP %s", status)
                    break
            if not retry or attempt == self.options.max_attempts:
                break
            pause = random.uniform(delay / 2, delay)
            if deadline is not None and time.monotonic() + pause > deadline:
                break
            if self._stop.wait(pause) and deadline is None:
                break
            delay = min(delay * 2, self.options.retry_max)
        self._count(failed=len(batch))

    def _without_rejected(self, response: httpx.Response, batch: list[Exposure]) -> list[Exposure]:
        bad = rejected_indices(response)
        kept = [] if bad is None else [e for i, e in enumerate(batch) if i not in bad]
        log.warning(
            "flagsite: the server rejected %d of %d events", len(batch) - len(kept), len(batch)
        )
        self._count(rejected=len(batch) - len(kept))
        return kept

    def _count(
        self, *, sent: int = 0, rejected: int = 0, failed: int = 0, drops_sent: int = 0
    ) -> None:
        with self._counts_lock:
            self._drops_sent += drops_sent
            self._sent += sent
            self._rejected += rejected
            self._failed += failed

    def close(self, timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
        self.flush(retry=True, deadline=deadline)

    def stats(self) -> EventStats:
        with self._counts_lock:
            return EventStats(
                recorded=self._sent + self._rejected + self._failed + len(self._queue),
                dropped=self._dropped,
                sent=self._sent,
                rejected=self._rejected,
                failed=self._failed,
                queued=len(self._queue),
            )


def build_payload(batch_id: str, batch: list[Exposure], dropped: int = 0) -> dict[str, Any]:
    """The body of POST /api/v1/events (field names: analytics.serializers)."""
    events = []
    for flag, variant, context_key, ts, units in batch:
        event: dict[str, Any] = {
            "type": "exposure",
            "flag": flag,
            "variant": variant,
            "context_key": context_key,
            "timestamp": datetime.fromtimestamp(ts, UTC).isoformat(),
            "assignments": {flag: variant},
        }
        if units:
            event["units"] = units
        events.append(event)
    return {"batch_id": batch_id, "sdk": {"dropped": dropped}, "events": events}


def rejected_indices(response: httpx.Response) -> set[int] | None:
    """The indices of the events a 400 names; None when it faults the batch as a whole."""
    try:
        body = response.json()
    except ValueError:
        return None
    errors = body.get("errors") if isinstance(body, dict) else None
    if not isinstance(errors, list) or not errors:
        return None
    indices = {e.get("index") for e in errors if isinstance(e, dict)}
    if not indices or not all(isinstance(i, int) for i in indices):
        return None
    return {i for i in indices if isinstance(i, int)}
