"""Keeps a RulesetStore current: the event stream first, ETag polling whenever it is down.

Two daemon threads. The streamer holds the SSE connection open and reconnects with capped
exponential backoff and full jitter, so a fleet of clients does not reconnect in lockstep after
a server restart. The poller polls only while the stream is not connected, and once at once
each time the stream drops, so nothing published during the gap is missed.
"""

from __future__ import annotations

import json
import logging
import random
import threading
from dataclasses import dataclass

import httpx

from flagsite_sdk.store import RulesetStore, Source
from flagsite_sdk.transport import SseEvent, SseParser, StreamRejected, Transport

log = logging.getLogger("flagsite_sdk")


@dataclass(frozen=True, slots=True)
class SyncOptions:
    streaming: bool = True
    poll_interval: float = 30.0
    # About three server heartbeats: a connection silent for longer is presumed dead.
    stream_read_timeout: float = 45.0
    connect_timeout: float = 5.0
    backoff_initial: float = 0.5
    backoff_max: float = 30.0


class Synchronizer:
    def __init__(self, store: RulesetStore, transport: Transport, options: SyncOptions) -> None:
        self.store = store
        self.transport = transport
        self.options = options
        self.stream_connected = threading.Event()
        self.stream_failures = 0
        self.poll_failures = 0
        self._stop = threading.Event()
        self._poll_now = threading.Event()
        self._etag: str | None = None
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        targets = [self._poll_loop]
        if self.options.streaming:
            targets.append(self._stream_loop)
        for target in targets:
            name = f"flagsite-{target.__name__.strip('_').replace('_loop', '')}"
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self, timeout: float = 2.0) -> None:
        self._stop.set()
        self._poll_now.set()
        self.transport.interrupt_stream()
        for thread in self._threads:
            thread.join(timeout)

    # --- polling -------------------------------------------------------------------------------

    def poll_once(self) -> bool:
        """One conditional GET; True when the server answered (200 or 304)."""
        try:
            fetched = self.transport.fetch_ruleset(self._etag)
        except (httpx.HTTPError, ValueError) as exc:
            self.poll_failures += 1
            log.debug("flagsite: ruleset poll failed: %s", exc)
            return False
        if fetched.document is not None:
            self.store.apply(fetched.document, Source.SERVER)
        self._etag = fetched.etag
        return True

    def _poll_loop(self) -> None:
        while not self._stop.is_set():
            if not self.stream_connected.is_set():
                self.poll_once()
            # Wakes early when the stream drops, so the gap is caught up at once.
            self._poll_now.wait(self.options.poll_interval)
            self._poll_now.clear()

    # --- streaming -----------------------------------------------------------------------------

    def _stream_loop(self) -> None:
        parser = SseParser()
        attempt = 0

        def opened() -> None:
            nonlocal attempt
            attempt = 0
            self.stream_connected.set()

        while not self._stop.is_set():
            current = self.store.current
            if current is not None and current.source is Source.SERVER:
                # The server then skips the initial event if nothing changed meanwhile.
                parser.last_event_id = str(current.version)
            try:
                for event in self.transport.stream(
                    parser,
                    self.options.stream_read_timeout,
                    self.options.connect_timeout,
                    opened,
                ):
                    self._handle(event)
                    if self._stop.is_set():
                        return
            except StreamRejected as exc:
                log.warning("flagsite: %s; polling instead", exc)
            except (httpx.HTTPError, OSError) as exc:
                log.debug("flagsite: stream dropped: %s", exc)
            except Exception:
                log.exception("flagsite: stream reader failed")
            if self._stop.is_set():
                return
            self.stream_failures += 1
            self.stream_connected.clear()
            self._poll_now.set()
            attempt += 1
            self._stop.wait(self._backoff(attempt, parser.retry_ms))

    def _backoff(self, attempt: int, retry_ms: int | None) -> float:
        base = retry_ms / 1000 if retry_ms is not None else self.options.backoff_initial
        ceiling = min(self.options.backoff_max, base * 2 ** min(attempt - 1, 16))
        # Full jitter, but never below half the base, so a restart is not hammered.
        return max(base / 2, random.uniform(0, ceiling))

    def _handle(self, event: SseEvent) -> None:
        if event.event != "ruleset":
            return
        try:
            payload = json.loads(event.data)
            document = payload["ruleset"]
        except (ValueError, KeyError, TypeError):
            log.warning("flagsite: malformed ruleset event %s", event.id)
            return
        if isinstance(document, dict):
            self.store.apply(document, Source.SERVER)
