"""A real HTTP server standing in for Mixpanel and Amplitude: it records every request and
answers with the vendors' documented response shapes, or with replies a test queues (429,
500, a refused event) or holds (to kill a worker while its request is in flight)."""

from __future__ import annotations

import base64
import json
import threading
import time
from collections import defaultdict, deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


@dataclass(frozen=True)
class Recorded:
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes
    at: float

    def json(self) -> Any:
        """The payload: JSON body (Amplitude) or the form field ``data`` (Mixpanel)."""
        if self.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
            return json.loads(parse_qs(self.body.decode())["data"][0])
        return json.loads(self.body)

    @property
    def basic_auth_user(self) -> str | None:
        value = self.headers.get("authorization", "")
        if not value.startswith("Basic "):
            return None
        return base64.b64decode(value[6:]).decode().split(":", 1)[0]


@dataclass(frozen=True)
class Reply:
    status: int
    body: Any
    headers: dict[str, str] = field(default_factory=dict)


def _default_reply(path: str, payload: Any) -> Reply:
    if path == "/import":
        return Reply(200, {"code": 200, "num_records_imported": len(payload), "status": "OK"})
    if path in ("/engage", "/track"):
        return Reply(200, {"status": 1, "error": None})
    events = payload.get("events", []) if isinstance(payload, dict) else []
    return Reply(200, {"code": 200, "events_ingested": len(events), "payload_size_bytes": 1})


class VendorServer:
    def __init__(self) -> None:
        self.requests: list[Recorded] = []
        self._queued: dict[str, deque[Reply]] = defaultdict(deque)
        self._holds: dict[str, threading.Event] = {}
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                parts = urlsplit(self.path)
                length = int(self.headers.get("content-length", 0))
                record = Recorded(
                    parts.path,
                    parse_qs(parts.query),
                    {k.lower(): v for k, v in self.headers.items()},
                    self.rfile.read(length),
                    time.monotonic(),
                )
                with server._lock:
                    server.requests.append(record)
                    hold = server._holds.get(parts.path)
                    queued = server._queued[parts.path]
                    reply = queued.popleft() if queued else None
                if hold is not None:
                    hold.wait(60)
                if reply is None:
                    reply = _default_reply(parts.path, record.json())
                data = json.dumps(reply.body).encode()
                self.send_response(reply.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def queue(self, path: str, *replies: Reply) -> None:
        with self._lock:
            self._queued[path].extend(replies)

    def hold(self, path: str) -> threading.Event:
        """Requests to ``path`` wait for the returned event before they are answered."""
        event = threading.Event()
        with self._lock:
            self._holds[path] = event
        return event

    def release(self, path: str) -> None:
        with self._lock:
            event = self._holds.pop(path, None)
        if event is not None:
            event.set()

    def to(self, path: str) -> list[Recorded]:
        with self._lock:
            return [r for r in self.requests if r.path == path]

    def close(self) -> None:
        for path in list(self._holds):
            self.release(path)
        self._httpd.shutdown()
        self._httpd.server_close()
