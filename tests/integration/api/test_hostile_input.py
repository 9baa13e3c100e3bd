"""Hostile input at the management API: every bad request is a JSON 4xx naming the field, and
nothing is written. "Nothing written" is checked on the object's version and its history."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from flags.history import REASON_MAX_LENGTH
from flags.models import FlagState
from tests.integration.api.conftest import World

pytestmark = pytest.mark.integration
BASE = "/api/v1/projects/shop"
STATE = f"{BASE}/flags/banner/environments/development"


def send(client: Client, world: World, method: str, url: str, body: Any = None) -> Any:
    call = getattr(client, method)
    return call(url, body, content_type="application/json", **world.auth("management"))


def snapshot(world: World) -> tuple[int, bool, int]:
    """(version, enabled, history rows) of the banner's development state."""
    state = world.state("banner")
    return state.version, state.enabled, FlagState.history.filter(id=state.pk).count()


def paths(response: Any) -> list[str]:
    assert response["Content-Type"].startswith("application/json"), response.content
    return [e["path"] for e in response.json()["errors"]]


def test_kill_with_a_reason_at_the_limit_is_recorded_in_full(client: Client, world: World) -> None:
    reason = "r" * REASON_MAX_LENGTH  # far beyond simple-history's old 100-character column
    killed = send(client, world, "post", f"{STATE}/kill", {"reason": reason})
    assert killed.status_code == 200, killed.content
    state = world.state("banner")
    assert state.enabled is False
    assert state.history.latest("history_id").history_change_reason.startswith(reason)


@pytest.mark.parametrize(
    "reason",
    ["x" * (REASON_MAX_LENGTH + 1), "x" * 10_000, 42, ["why"], {"why": "x"}, None, True],
    ids=["limit+1", "10000", "int", "list", "object", "null", "bool"],
)
def test_kill_refuses_a_bad_reason_and_writes_nothing(
    client: Client, world: World, reason: Any
) -> None:
    before = snapshot(world)
    response = send(client, world, "post", f"{STATE}/kill", {"reason": reason})
    assert response.status_code == 400, response.content
    assert paths(response) == ["reason"]
    assert snapshot(world) == before
    assert before[1] is True  # the flag was on, and stays on


def test_a_long_reason_in_a_patch_is_a_400(client: Client, world: World) -> None:
    before = snapshot(world)
    body = {"version": before[0], "offVariant": "sale", "reason": "x" * 10_000}
    response = send(client, world, "patch", STATE, body)
    assert response.status_code == 400, response.content
    assert paths(response) == ["reason"]
    assert snapshot(world) == before


def test_a_long_reason_in_the_query_of_a_delete_is_a_400(client: Client, world: World) -> None:
    response = send(client, world, "delete", f"{BASE}/flags/banner?reason={'x' * 10_000}")
    assert response.status_code == 400, response.content
    assert paths(response) == ["reason"]
    assert world.state("banner").flag.archived is False
