"""``GET /api/v1/sdk/stream`` with a client key (browsers): version numbers only, never rules."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from tests.js.world import demo_world
from tests.support.processes import ServerProcess

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def first_event(url: str, key: str) -> tuple[int, dict[str, str]]:
    frame: dict[str, str] = {}
    headers = {"Authorization": f"Bearer {key}"}
    with httpx.stream("GET", url, headers=headers, timeout=10) as response:
        if response.status_code != 200:
            return response.status_code, {}
        for line in response.iter_lines():
            if line == "" and "event" in frame:
                return 200, frame
            if line and not line.startswith(":"):
                name, _, value = line.partition(":")
                frame[name] = value.removeprefix(" ")
    raise AssertionError("the stream ended without an event")


def test_client_keys_get_versions_and_server_keys_rulesets(
    server_factory: Callable[..., ServerProcess],
) -> None:
    world = demo_world()
    server = server_factory()
    url = f"{server.url}/api/v1/sdk/stream"
    status, client_frame = first_event(url, world.client_key)
    assert status == 200
    assert client_frame["event"] == "version"
    assert client_frame["data"] == f'{{"version": {client_frame["id"]}}}'
    status, server_frame = first_event(url, world.server_key)
    assert (status, server_frame["event"]) == (200, "ruleset")
    assert "enterprise-accounts" in server_frame["data"]  # rules and segments: servers only
    assert server_frame["id"] == client_frame["id"]
    status, _ = first_event(url, world.management_key)
    assert status == 403
