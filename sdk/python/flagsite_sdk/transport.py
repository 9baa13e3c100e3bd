"""HTTP to the Flagsite server: the ruleset (with ETag), its event stream, and event batches."""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from flagsite_sdk import __version__

RULESET_PATH = "/api/v1/sdk/ruleset"
STREAM_PATH = "/api/v1/sdk/stream"
EVENTS_PATH = "/api/v1/events"


@dataclass(frozen=True, slots=True)
class SseEvent:
    event: str
    data: str
    id: str | None


class SseParser:
    """Turns the lines of a text/event-stream into events, following the WHATWG rules."""

    def __init__(self) -> None:
        self.last_event_id: str | None = None
        self.retry_ms: int | None = None
        self._event = ""
        self._data: list[str] = []

    def feed(self, line: str) -> SseEvent | None:
        if line == "":
            return self._dispatch()
        if line.startswith(":"):
            return None
        name, sep, value = line.partition(":")
        if sep and value.startswith(" "):
            value = value[1:]
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value
        elif name == "id" and "\0" not in value:
            self.last_event_id = value
        elif name == "retry" and value.isdigit():
            self.retry_ms = int(value)
        return None

    def _dispatch(self) -> SseEvent | None:
        data, event = self._data, self._event or "message"
        self._data, self._event = [], ""
        if not data:
            return None
        return SseEvent(event, "\n".join(data), self.last_event_id)


@dataclass(frozen=True, slots=True)
class Fetched:
    """One ruleset poll: ``document`` is None when the server answered 304 Not Modified."""

    document: dict[str, Any] | None
    etag: str | None


class StreamRejected(Exception):  # noqa: N818 - names the server's answer, not an error class
    """The server answered the stream request with a non-200 status."""

    def __init__(self, status: int) -> None:
        super().__init__(f"stream answered HTTP {status}")
        self.status = status


class Transport:
    """Thread-safe: httpx.Client pools connections and may be shared between threads."""

    def __init__(
        self,
        url: str,
        server_key: str,
        *,
        timeout: float = 5.0,
        stream_url: str | None = None,
        events_url: str | None = None,
    ) -> None:
        base = url.rstrip("/")
        self.ruleset_url = base + RULESET_PATH
        self.stream_url = stream_url or base + STREAM_PATH
        self.events_url = events_url or base + EVENTS_PATH
        self._http = httpx.Client(
            timeout=timeout,
            headers={
                "Authorization": f"Bearer {server_key}",
                "User-Agent": f"flagsite-python/{__version__}",
            },
        )
        self._stream_response: httpx.Response | None = None
        self._lock = threading.Lock()

    def fetch_ruleset(self, etag: str | None) -> Fetched:
        headers = {"If-None-Match": etag} if etag else {}
        response = self._http.get(self.ruleset_url, headers=headers)
        if response.status_code == 304:
            return Fetched(None, etag)
        response.raise_for_status()
        document = response.json()
        if not isinstance(document, dict):
            raise ValueError("the ruleset endpoint returned a non-object")
        return Fetched(document, response.headers.get("ETag"))

    def stream(
        self,
        parser: SseParser,
        read_timeout: float,
        connect_timeout: float,
        on_open: Callable[[], None],
    ) -> Iterator[SseEvent]:
        """Yields events until the stream ends; raises on errors and on read timeouts, which is
        how a silently dead connection (no heartbeat) is noticed."""
        headers = {"Accept": "text/event-stream", "Cache-Control": "no-cache"}
        if parser.last_event_id:
            headers["Last-Event-ID"] = parser.last_event_id
        timeout = httpx.Timeout(connect_timeout, read=read_timeout)
        with self._http.stream("GET", self.stream_url, headers=headers, timeout=timeout) as resp:
            if resp.status_code != 200:
                raise StreamRejected(resp.status_code)
            with self._lock:
                self._stream_response = resp
            on_open()
            try:
                for line in resp.iter_lines():
                    event = parser.feed(line)
                    if event is not None:
                        yield event
            finally:
                with self._lock:
                    self._stream_response = None

    def interrupt_stream(self) -> None:
        """Closes the open stream from another thread, so its reader wakes up at once."""
        with self._lock:
            resp = self._stream_response
        if resp is not None:
            # The reader sees the closed socket whether or not close() itself complains.
            with contextlib.suppress(Exception):
                resp.close()

    def post_events(self, payload: Mapping[str, Any]) -> httpx.Response:
        return self._http.post(
            self.events_url,
            content=json.dumps(payload, separators=(",", ":")),
            headers={"Content-Type": "application/json"},
        )

    def close(self) -> None:
        self.interrupt_stream()
        self._http.close()
