"""Hostile input at the management API: every bad request is a JSON 4xx naming the field, and
nothing is written. "Nothing written" is checked on the object's version and its history."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from flags.api.parsers import MAX_JSON_DEPTH
from flags.history import REASON_MAX_LENGTH
from flags.models import Flag, FlagState
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


def raw_send(client: Client, world: World, method: str, url: str, raw: bytes, **extra: Any) -> Any:
    """A body sent byte for byte (Django's client would re-encode a dict)."""
    call = getattr(client, method)
    return call(url, raw, content_type="application/json", **world.auth("management"), **extra)


@pytest.mark.parametrize(
    ("raw", "path"),
    [
        (b'{"key": "fresh", "name": "x\\u0000y"}', "name"),
        (b'{"key": "fresh", "name": "ok", "tags": ["a", "\\u0000"]}', "tags[1]"),
        (b'{"key": "fresh", "name": "ok", "description": "\\ud800"}', "description"),
        (
            b'{"key": "fresh", "name": "ok", "variants": {"on": true, "\\udc00": false}}',
            "variants.",
        ),
        (b'{"key": "fresh\\u0000", "name": "ok"}', "key"),
    ],
    ids=["nul-name", "nul-in-list", "surrogate", "surrogate-in-a-key", "nul-key"],
)
def test_nul_and_lone_surrogates_in_a_body_are_400_with_the_path(
    client: Client, world: World, raw: bytes, path: str
) -> None:
    response = raw_send(client, world, "post", f"{BASE}/flags", raw)
    assert response.status_code == 400, response.content
    assert paths(response)[0].startswith(path), paths(response)
    assert not Flag.objects.filter(project=world.project, key__startswith="fresh").exists()


def test_nul_deep_in_rules_names_its_path(client: Client, world: World) -> None:
    before = snapshot(world)
    raw = (
        b'{"version": %d, "rules": [{"id": "r\\u0000", "conditions": [], '
        b'"serve": {"variant": "sale"}}]}' % before[0]
    )
    response = raw_send(client, world, "patch", STATE, raw)
    assert response.status_code == 400, response.content
    assert paths(response) == ["rules[0].id"]
    assert snapshot(world) == before


@pytest.mark.parametrize(
    "url",
    [
        f"{BASE}/flags/ban%00ner",
        f"{BASE}/flags/banner/environments/dev%00/kill",
        "/api/v1/projects/sh%00op/flags",
    ],
)
def test_nul_in_a_path_segment_is_400_naming_it(client: Client, world: World, url: str) -> None:
    before = snapshot(world)
    response = send(client, world, "post" if url.endswith("kill") else "get", url, {"reason": "x"})
    assert response.status_code == 400, response.content
    assert paths(response)[0] in {"key", "env", "project"}
    assert snapshot(world) == before


@pytest.mark.parametrize("query", ["search=%00", "tag=a%00b", "kind=%00", "x%00=1"])
def test_nul_in_a_query_is_400_naming_the_parameter(
    client: Client, world: World, query: str
) -> None:
    response = send(client, world, "get", f"{BASE}/flags?{query}")
    assert response.status_code == 400, response.content
    assert paths(response) == [query.split("=")[0].replace("%00", "\x00")]


def test_nul_in_the_reason_of_a_delete_archives_nothing(client: Client, world: World) -> None:
    response = send(client, world, "delete", f"{BASE}/flags/banner?reason=why%00")
    assert response.status_code == 400, response.content
    assert paths(response) == ["reason"]
    assert world.state("banner").flag.archived is False


def test_percent_escapes_that_are_not_utf8_are_not_a_500(client: Client, world: World) -> None:
    # %ED%A0%80 would be a lone surrogate: the server decodes it to U+FFFD, no such flag.
    response = send(client, world, "get", f"{BASE}/flags/%ED%A0%80")
    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"


@pytest.mark.parametrize("depth", [MAX_JSON_DEPTH + 1, 1_500, 5_000])
def test_json_deeper_than_the_limit_is_400(client: Client, world: World, depth: int) -> None:
    before = snapshot(world)
    nested = b"[" * depth + b"]" * depth
    raw = b'{"version": %d, "offVariant": "sale", "rules": %s}' % (before[0], nested)
    response = raw_send(client, world, "patch", STATE, raw)
    assert response.status_code == 400, response.content
    [error] = response.json()["errors"]
    assert f"deeper than {MAX_JSON_DEPTH}" in error["message"]
    assert snapshot(world) == before


def test_json_at_the_depth_limit_is_parsed(client: Client, world: World) -> None:
    # 63 levels inside the body object: the parser accepts it and the serializer decides.
    inner = b"[" * (MAX_JSON_DEPTH - 1) + b"]" * (MAX_JSON_DEPTH - 1)
    raw = b'{"version": 1, "rules": %s}' % inner
    response = raw_send(client, world, "patch", STATE, raw)
    assert response.status_code in {400, 409}
    assert all("deeper" not in e.get("message", "") for e in response.json().get("errors", []))


def test_a_body_over_the_limit_is_413_in_json(client: Client, world: World, settings: Any) -> None:
    before = snapshot(world)
    limit = settings.FLAGSITE_API_MAX_BODY_BYTES
    padding = b"x" * limit
    raw = b'{"version": %d, "offVariant": "sale", "reason": "%s"}' % (before[0], padding)
    response = raw_send(client, world, "patch", STATE, raw)
    assert response.status_code == 413, response.content
    assert response["Content-Type"] == "application/json"
    assert str(limit) in response.json()["detail"]
    assert snapshot(world) == before


@pytest.mark.parametrize(
    "body",
    [{"foo": 1}, {"version": 1, "foo": 1, "bar": 2}, {"version": 1}],
    ids=["no-version", "unknown-only", "nothing"],
)
@pytest.mark.parametrize("url", [STATE, f"{BASE}/flags/banner", f"{BASE}/segments/staff",
                                 f"{BASE}/environments/development"])  # fmt: skip
def test_a_patch_with_nothing_known_to_change_is_400(
    client: Client, world: World, body: dict[str, Any], url: str
) -> None:
    current = send(client, world, "get", url).json()["version"]
    if "version" in body:
        body = {**body, "version": current}
    before = snapshot(world)
    response = send(client, world, "patch", url, body)
    assert response.status_code == 400, response.content
    named = paths(response)
    if "version" not in body:
        assert "version" in named
    elif len(body) > 1:
        assert named == sorted(set(body) - {"version"})
    else:
        assert named == [""]
    assert send(client, world, "get", url).json()["version"] == current
    assert snapshot(world) == before


@pytest.mark.parametrize("field", ["name", "description", "salt"])
def test_a_text_field_that_is_not_a_string_is_400(client: Client, world: World, field: str) -> None:
    body = {"key": "fresh", "name": "Fresh", field: 12}
    response = send(client, world, "post", f"{BASE}/flags", body)
    assert response.status_code == 400, response.content
    assert paths(response) == [field]
    assert not Flag.objects.filter(project=world.project, key="fresh").exists()


def test_a_key_that_breaks_the_pattern_is_400(client: Client, world: World) -> None:
    response = send(client, world, "post", f"{BASE}/flags", {"key": "Not A Key", "name": "x"})
    assert response.status_code == 400
    assert paths(response) == ["key"]


def test_an_unknown_api_path_is_a_json_404(client: Client, world: World) -> None:
    response = send(client, world, "get", "/api/v1/no-such-thing")
    assert response.status_code == 404
    assert response.json() == {"detail": "No such endpoint."}


def test_an_unexpected_failure_on_an_api_path_is_a_json_500(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A fault injected below the view, as a bug or a lost database would raise it.
    def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("injected")

    monkeypatch.setattr("flags.api.management.services.kill_flag", broken)
    client = Client(raise_request_exception=False)
    response = send(client, world, "post", f"{STATE}/kill", {"reason": "x"})
    assert response.status_code == 500
    assert response["Content-Type"] == "application/json"
    assert response.json()["detail"] == "Internal server error."
    assert response.json()["requestId"]


@pytest.mark.parametrize(
    ("raw", "path"),
    [(None, ""), (b"null", ""), (b"[]", ""), (b'{"context": null}', "context"),
     (b'{"context": [1]}', "context"), (b"{bad", "")],
    ids=["no-body", "null", "array", "null-context", "array-context", "malformed"],
)  # fmt: skip
@pytest.mark.parametrize("url", ["/api/v1/evaluate/all", "/api/v1/evaluate"])
def test_evaluation_refuses_a_body_that_is_not_an_object_with_a_context(
    client: Client, world: World, raw: bytes | None, path: str, url: str
) -> None:
    headers = world.auth("client")
    if raw is None:
        response = client.generic("POST", url, b"", **headers)
    else:
        response = client.post(url, raw, content_type="application/json", **headers)
    assert response.status_code == 400, response.content
    assert paths(response) == [path]
