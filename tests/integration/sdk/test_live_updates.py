"""The SDK against a real Flagsite server: streaming, outages, reconnection, polling fallback,
cold starts from the on-disk copy."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from flagsite_sdk.store import Source

from tests.integration.sdk.conftest import FLAG, SdkWorld
from tests.integration.sdk.proxy import StreamBlockingProxy
from tests.support.processes import ServerProcess, free_port, wait_until

pytestmark = pytest.mark.integration


def test_a_change_reaches_the_client_over_the_stream(
    sdk_world: SdkWorld, flagsite_server: ServerProcess
) -> None:
    # Polling only once an hour: anything seen within the deadline came over the stream.
    client = sdk_world.client(flagsite_server.url, poll_interval=3600)
    assert client.snapshot is not None
    assert client.snapshot.source is Source.SERVER
    assert client.is_enabled(FLAG, {"targetingKey": "u1"}) is False
    wait_until(lambda: client.stats().stream_connected, 10, "the stream to connect")

    sdk_world.set_enabled(flagsite_server.url, True)
    wait_until(lambda: client.is_enabled(FLAG, {"targetingKey": "u1"}), 5, "the change")
    sdk_world.set_enabled(flagsite_server.url, False)
    wait_until(lambda: not client.is_enabled(FLAG, {"targetingKey": "u1"}), 5, "the change back")
    assert client.stats().poll_failures == 0


def test_an_outage_keeps_the_last_rules_and_a_restart_is_caught_up(
    sdk_world: SdkWorld, fast_server: ServerProcess
) -> None:
    client = sdk_world.client(fast_server.url, poll_interval=3600)
    sdk_world.set_enabled(fast_server.url, True)
    wait_until(lambda: client.is_enabled(FLAG), 5, "the flag to turn on")
    wait_until(lambda: client.stats().stream_connected, 10, "the stream to connect")

    fast_server.stop()
    wait_until(lambda: not client.stats().stream_connected, 10, "the client to notice the outage")
    for _ in range(100):
        assert client.is_enabled(FLAG) is True
    assert client.details(FLAG).reason != "ERROR"

    # Changed while no server runs: the client must catch up on reconnection, not miss it.
    sdk_world.set_enabled_in_database(False)
    fast_server.start()
    wait_until(lambda: not client.is_enabled(FLAG), 15, "the client to catch up after restart")
    wait_until(lambda: client.stats().stream_connected, 15, "the stream to reconnect")
    assert client.stats().stream_failures >= 1

    sdk_world.set_enabled(fast_server.url, True)
    wait_until(lambda: client.is_enabled(FLAG), 5, "a change over the new stream")


def test_the_polling_fallback_takes_over_when_streaming_is_blocked(
    sdk_world: SdkWorld, flagsite_server: ServerProcess
) -> None:
    with StreamBlockingProxy(flagsite_server.url) as proxy:
        client = sdk_world.client(proxy.url, poll_interval=0.2)
        assert client.snapshot is not None
        assert client.is_enabled(FLAG) is False
        sdk_world.set_enabled(flagsite_server.url, True)
        wait_until(lambda: client.is_enabled(FLAG), 5, "the change to arrive by polling")
        stats = client.stats()
        assert stats.stream_connected is False
        assert proxy.refused >= 1
        assert stats.stream_failures >= 1
        polls = [p for p in proxy.forwarded if p.startswith("/api/v1/sdk/ruleset")]
        assert len(polls) >= 2


def test_cold_start_during_an_outage_serves_the_on_disk_copy(
    sdk_world: SdkWorld, fast_server: ServerProcess, tmp_path: Path
) -> None:
    cache = tmp_path / "flagsite" / "ruleset.json"
    sdk_world.set_enabled(fast_server.url, True)
    first = sdk_world.client(fast_server.url, cache_path=cache)
    wait_until(lambda: first.is_enabled(FLAG), 5, "the flag to turn on")
    wait_until(cache.exists, 5, "the on-disk copy")
    first.close()
    fast_server.stop()

    started = time.monotonic()
    cold = sdk_world.client(fast_server.url, cache_path=cache, init_timeout=0.5)
    assert time.monotonic() - started < 3
    assert cold.snapshot is not None
    assert cold.snapshot.source is Source.CACHE
    assert cold.is_enabled(FLAG) is True

    fast_server.start()
    wait_until(
        lambda: cold.snapshot is not None and cold.snapshot.source is Source.SERVER,
        15,
        "the server's ruleset to replace the cached one",
    )


def test_an_unreachable_server_and_no_copy_gives_defaults_after_a_bounded_wait(
    sdk_world: SdkWorld,
) -> None:
    started = time.monotonic()
    client = sdk_world.client(f"http://127.0.0.1:{free_port()}", init_timeout=0.5)
    assert time.monotonic() - started < 3
    assert client.is_enabled(FLAG, default=True) is True
    assert client.details(FLAG, default=False).error_code is not None


def test_a_forked_child_keeps_its_rules_and_gets_its_own_stream(
    sdk_world: SdkWorld, flagsite_server: ServerProcess
) -> None:
    # Like a gunicorn worker forked after the app (and its client) was built: the parent's
    # stream thread does not exist in the child, so the client must start its own.
    client = sdk_world.client(flagsite_server.url, poll_interval=3600)
    wait_until(lambda: client.stats().stream_connected, 10, "the stream to connect")
    ready_read, ready_write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report, never return into pytest
        code = 1
        try:
            os.close(ready_read)
            served_before = client.is_enabled(FLAG, {"targetingKey": "u1"}, default=True)
            wait_until(lambda: client.stats().stream_connected, 10, "the child's stream")
            os.write(ready_write, b"1")
            wait_until(lambda: client.is_enabled(FLAG, {"targetingKey": "u1"}), 10, "the change")
            code = 0 if served_before is False else 2
        finally:
            os._exit(code)
    os.close(ready_write)
    assert os.read(ready_read, 1) == b"1", "the child never connected its own stream"
    sdk_world.set_enabled(flagsite_server.url, True)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    wait_until(lambda: client.is_enabled(FLAG, {"targetingKey": "u1"}), 5, "the parent's change")
