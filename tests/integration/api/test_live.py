"""Over a real ASGI server: API changes reach SSE subscribers, revocation reaches every
process within a second, and an unmodified OpenFeature OFREP provider works."""

from __future__ import annotations

import json
import queue
import socket
import threading
import time
from collections.abc import Callable, Iterator

import httpx
import pytest
from openfeature import api as openfeature
from openfeature.contrib.provider.ofrep import OFREPProvider
from openfeature.evaluation_context import EvaluationContext

from apikeys import services as key_services
from apikeys.models import ApiKey
from apikeys.services import provision
from tests.integration.api.conftest import World, build_world
from tests.support.processes import ServerProcess, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


OPEN: list[Stream] = []


class Stream:
    """Reads one SSE stream on a thread; frames (events and comments) land in a queue."""

    def __init__(self, url: str, headers: dict[str, str]) -> None:
        OPEN.append(self)
        self.frames: queue.Queue[dict[str, str]] = queue.Queue()
        self.status: int | None = None
        self._client = httpx.Client(timeout=httpx.Timeout(5.0, read=30.0))
        self._thread = threading.Thread(target=self._run, args=(url, headers), daemon=True)
        self._thread.start()

    def _run(self, url: str, headers: dict[str, str]) -> None:
        try:
            with self._client.stream("GET", url, headers=headers) as response:
                self.status = response.status_code
                frame: dict[str, str] = {}
                for line in response.iter_lines():
                    if line == "":
                        if frame:
                            self.frames.put(frame)
                        frame = {}
                    elif line.startswith(":"):
                        self.frames.put({"comment": line[1:].strip()})
                    else:
                        name, _, value = line.partition(":")
                        frame[name] = value.removeprefix(" ")
        except httpx.HTTPError:
            pass

    def next(self, predicate: Callable[[dict[str, str]], bool], timeout: float) -> dict[str, str]:
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no matching SSE frame")
            frame = self.frames.get(timeout=left)
            if predicate(frame):
                return frame

    def close(self) -> None:
        self._client.close()


def is_event(frame: dict[str, str]) -> bool:
    return frame.get("event") == "ruleset"


@pytest.fixture
def live(server_factory: Callable[..., ServerProcess]) -> Iterator[tuple[World, ServerProcess]]:
    world = build_world()
    server = server_factory(workers=2, extra_env={"FLAGSITE_SSE_HEARTBEAT_SECONDS": "0.3"})
    yield world, server
    while OPEN:  # open streams would hold the server's graceful shutdown
        OPEN.pop().close()


def test_an_api_change_reaches_sse_subscribers(live: tuple[World, ServerProcess]) -> None:
    world, server = live
    url = f"{server.url}/api/v1/sdk/stream"
    fresh = Stream(url, world.headers("server"))
    first = fresh.next(is_event, 10)
    assert fresh.status == 200
    data = json.loads(first["data"])
    version = data["version"]
    assert first["id"] == str(version)
    assert data["ruleset"]["flags"]["banner"]["enabled"] is True
    resumed = Stream(url, {**world.headers("server"), "Last-Event-ID": str(version)})
    # Already up to date: the first thing it hears is a heartbeat, not the ruleset again.
    assert resumed.next(lambda f: "retry" not in f, 10) == {"comment": "heartbeat"}

    started = time.monotonic()
    kill = httpx.post(
        f"{server.url}/api/v1/projects/shop/flags/banner/environments/development/kill",
        json={"reason": "incident"},
        headers=world.headers("management"),
    )
    assert kill.status_code == 200, kill.text
    for stream in (fresh, resumed):
        event = stream.next(is_event, 5)
        pushed = json.loads(event["data"])
        assert pushed["version"] > version
        assert pushed["ruleset"]["flags"]["banner"]["enabled"] is False
    assert time.monotonic() - started < 2.0
    fresh.close()
    resumed.close()
    etag = httpx.get(f"{server.url}/api/v1/sdk/ruleset", headers=world.headers("server"))
    assert etag.headers["ETag"] == f'"{pushed["version"]}"'


def test_revocation_reaches_every_process_within_a_second(
    live: tuple[World, ServerProcess],
) -> None:
    world, server = live
    body = {"flag": "banner"}
    # Two workers: warm the key into both processes' caches.
    for _ in range(20):
        ok = httpx.post(f"{server.url}/api/v1/evaluate", json=body, headers=world.headers("server"))
        assert ok.status_code == 200
    key_services.revoke(ApiKey.objects.get(name="server"), actor=world.owner, reason="leaked")
    revoked_at = time.monotonic()

    def refused_everywhere() -> bool:
        url = f"{server.url}/api/v1/evaluate"
        headers = world.headers("server")
        codes = {httpx.post(url, json=body, headers=headers).status_code for _ in range(6)}
        return codes == {401}

    wait_until(refused_everywhere, 1.0, "the revoked key to be refused by every worker")
    assert time.monotonic() - revoked_at < 1.0


def test_an_openfeature_ofrep_provider_works_unchanged(
    live: tuple[World, ServerProcess],
) -> None:
    world, server = live
    raw = world.keys["server"]
    openfeature.set_provider(
        OFREPProvider(server.url, headers_factory=lambda: {"Authorization": f"Bearer {raw}"})
    )
    client = openfeature.get_client()
    alice = EvaluationContext(targeting_key="alice")
    bob = EvaluationContext(targeting_key="bob")
    details = client.get_boolean_details("new-checkout", False, alice)
    assert (details.value, details.variant, details.reason) == (True, "on", "TARGETING_MATCH")
    assert client.get_boolean_value("new-checkout", True, bob) is False
    assert client.get_string_value("banner", "", bob) == "50% off"
    missing = client.get_boolean_details("no-such-flag", True, bob)
    assert missing.value is True
    assert str(missing.error_code.value if missing.error_code else "") == "FLAG_NOT_FOUND"


def _open_raw_stream(server: ServerProcess, headers: dict[str, str]) -> tuple[socket.socket, bytes]:
    """An SSE request on a plain socket, read until its first ruleset event or the end of a
    refusal; closing the socket is then a real disconnect the server sees."""
    host, port = server.url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=10)
    lines = ["GET /api/v1/sdk/stream HTTP/1.1", f"Host: {host}", "Connection: close"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
    received = b""
    while b"event: ruleset" not in received:
        chunk = sock.recv(65536)
        if not chunk:
            break
        received += chunk
    return sock, received


def _raw_stream(server: ServerProcess, headers: dict[str, str]) -> socket.socket:
    sock, received = _open_raw_stream(server, headers)
    assert received.startswith(b"HTTP/1.1 200"), received[:200]
    return sock


def _stream_opens(server: ServerProcess, headers: dict[str, str]) -> bool:
    sock, received = _open_raw_stream(server, headers)
    sock.close()
    return received.startswith(b"HTTP/1.1 200")


def test_open_streams_per_key_are_capped_and_freed_on_disconnect(
    server_factory: Callable[..., ServerProcess],
) -> None:
    world = build_world()
    server = server_factory(
        workers=1,
        extra_env={
            "FLAGSITE_SSE_HEARTBEAT_SECONDS": "0.2",
            "FLAGSITE_SSE_MAX_STREAMS_PER_KEY": "2",
        },
    )
    url = f"{server.url}/api/v1/sdk/stream"
    held = [_raw_stream(server, world.headers("server")) for _ in range(2)]
    try:
        refused = httpx.get(url, headers=world.headers("server"), timeout=5)
        assert refused.status_code == 429
        assert refused.headers["Retry-After"] == "30"
        assert "2 open streams" in refused.json()["detail"]
        # Another key of the same environment has its own allowance.
        _, second = provision(environment=world.dev, kind="server", name="second")
        assert _stream_opens(server, {"Authorization": f"Bearer {second}"})

        held.pop().close()
        # The server sees the disconnect (at once, or at its next heartbeat) and frees the slot.
        wait_until(
            lambda: _stream_opens(server, world.headers("server")),
            10,
            "the closed stream's slot to be freed",
        )
    finally:
        for sock in held:
            sock.close()


def test_the_lean_path_recovers_from_a_dropped_database_connection(
    server_factory: Callable[..., ServerProcess],
) -> None:
    # Evaluation requests skip Django's request signals, so the connection hygiene they did
    # (drop a broken connection, return a pooled one) happens around each cache-miss query.
    from django.db import connection

    world = build_world()
    server = server_factory(workers=1)
    url = f"{server.url}/api/v1/evaluate"
    body = {"flag": "banner", "context": {"targetingKey": "u1"}}
    first = httpx.post(url, json=body, headers=world.headers("server"), timeout=5)
    assert first.status_code == 200, first.text
    assert first.headers["X-Request-ID"]  # middleware still runs on the lean path

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        (terminated,) = cursor.fetchone()
    assert terminated >= 1  # the server's connection is gone

    _, fresh = provision(environment=world.dev, kind="server", name="after the drop")
    again = httpx.post(url, json=body, headers={"Authorization": f"Bearer {fresh}"}, timeout=5)
    assert again.status_code == 200, again.text  # the key lookup (a cache miss) reconnected


def _threads_of(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        line = next(line for line in status if line.startswith("Threads:"))
    return int(line.split()[1])


def test_a_thousand_idle_streams_need_no_thread_each(
    server_factory: Callable[..., ServerProcess],
) -> None:
    world = build_world()
    server = server_factory(workers=1, extra_env={"FLAGSITE_SSE_HEARTBEAT_SECONDS": "30"})
    assert server.proc is not None
    before = _threads_of(server.proc.pid)
    streams = [_raw_stream(server, world.headers("server")) for _ in range(1000)]
    try:
        during = _threads_of(server.proc.pid)
        # A stream is a coroutine on the server's loop: the thread count barely moves.
        assert during < before + 10, (before, during)
        assert during < 50
        # And every one of them is live: a kill switch reaches all 1,000.
        kill = httpx.post(
            f"{server.url}/api/v1/projects/shop/flags/banner/environments/development/kill",
            json={"reason": "incident"},
            headers=world.headers("management"),
        )
        assert kill.status_code == 200, kill.text
        ruleset = httpx.get(f"{server.url}/api/v1/sdk/ruleset", headers=world.headers("server"))
        marker = f"id: {ruleset.headers['ETag'].strip(chr(34))}".encode()
        for sock in streams:
            sock.settimeout(10)
            received = b""
            while marker not in received:
                chunk = sock.recv(65536)
                assert chunk, "a stream ended before the change arrived"
                received += chunk
    finally:
        for sock in streams:
            sock.close()
