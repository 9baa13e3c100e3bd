"""OFREP as the protocol says: reasons from its enum, its error shapes, ETags that change only
when what the caller receives changes, and INVALID_CONTEXT vs TARGETING_KEY_MISSING."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.test import Client

from apikeys import services as apikey_services
from flags import evaluation, services
from flags.models import Environment
from tests.integration.api.conftest import SOURCE, World
from tests.integration.api.conftest import enable as enable_in_db

pytestmark = pytest.mark.integration
OFREP_REASONS = {"STATIC", "TARGETING_MATCH", "SPLIT", "DISABLED", "UNKNOWN"}
ENGINE_REASONS = {"STATIC", "TARGETING_MATCH", "SPLIT", "DEFAULT", "DISABLED"}


def enable(world: World, flag_key: str, env: Environment, **changes: Any) -> None:
    enable_in_db(world, flag_key, env, **changes)
    evaluation.clear()  # these tests run in one transaction: no commit, so no notification


def post(client: Client, key: str, path: str, raw: bytes | None, **extra: Any) -> Any:
    url = f"/ofrep/v1/evaluate/flags{path}"
    if raw is None:  # no body and no Content-Type at all
        return client.generic("POST", url, b"", HTTP_X_API_KEY=key, **extra)
    return client.post(url, raw, content_type="application/json", HTTP_X_API_KEY=key, **extra)


def bulk(client: Client, key: str, context: dict[str, Any], **extra: Any) -> Any:
    return post(client, key, "", json.dumps({"context": context}).encode(), **extra)


def test_every_reason_is_from_the_protocols_enum(client: Client, world: World) -> None:
    rollout = {"rollout": {"variants": [{"variant": "on", "weight": 50_000},
                                        {"variant": "off", "weight": 50_000}]}}  # fmt: skip
    enable(world, "internal-tool", world.dev, default_serve=rollout)
    seen: set[str] = set()
    for user in ("alice", "bob", "carol", "dave", "erin", "frank"):
        flags = bulk(client, world.keys["server"], {"targetingKey": user}).json()["flags"]
        for item in flags:
            assert item["reason"] in OFREP_REASONS, item
            assert item["metadata"]["flagsiteReason"] in ENGINE_REASONS, item
            seen.add(item["metadata"]["flagsiteReason"])
            if item["metadata"]["flagsiteReason"] == "DEFAULT":
                assert item["reason"] == "UNKNOWN"
            else:
                assert item["reason"] == item["metadata"]["flagsiteReason"]
    assert {"DEFAULT", "TARGETING_MATCH", "SPLIT"} <= seen


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        (b"{not json", "PARSE_ERROR"),
        (b"[" * 2000 + b"]" * 2000, "PARSE_ERROR"),
        (b"null", "INVALID_CONTEXT"),
        (b"[]", "INVALID_CONTEXT"),
        (b'{"context": null}', "INVALID_CONTEXT"),
        (b'{"context": "alice"}', "INVALID_CONTEXT"),
    ],
    ids=["malformed", "too-deep", "null-body", "array-body", "null-context", "string-context"],
)
def test_bad_requests_get_the_protocols_error_shape(
    client: Client, world: World, raw: bytes, code: str
) -> None:
    single = post(client, world.keys["server"], "/banner", raw)
    assert single.status_code == 400, single.content
    assert single.json()["key"] == "banner"
    assert single.json()["errorCode"] == code
    assert isinstance(single.json()["errorDetails"], str)
    many = post(client, world.keys["client"], "", raw)
    assert many.status_code == 400, many.content
    assert set(many.json()) == {"errorCode", "errorDetails"}
    assert many.json()["errorCode"] == code


def test_no_body_is_an_empty_context(client: Client, world: World) -> None:
    # The protocol's request body is optional (OpenFeature providers send none without context).
    response = post(client, world.keys["server"], "/banner", None)
    assert response.status_code == 200, response.content
    assert response.json()["value"] == "50% off"


def test_a_lone_surrogate_in_the_context_is_evaluated_as_u_fffd(
    client: Client, world: World
) -> None:
    rollout = {"rollout": {"variants": [{"variant": "on", "weight": 50_000},
                                        {"variant": "off", "weight": 50_000}]}}  # fmt: skip
    enable(world, "internal-tool", world.dev, default_serve=rollout)
    lone = post(
        client, world.keys["server"], "/internal-tool", b'{"context": {"targetingKey": "a\\ud800"}}'
    )
    replaced = post(client, world.keys["server"], "/internal-tool",
                    '{"context": {"targetingKey": "a\ufffd"}}'.encode())  # fmt: skip
    assert lone.status_code == replaced.status_code == 200, lone.content
    assert lone.json()["variant"] == replaced.json()["variant"]


def _two_identical_environments(world: World) -> tuple[str, str]:
    project = services.create_project(key="twins", name="Twins", actor=world.owner, source=SOURCE)
    services.create_flag(project, data={"key": "same", "name": "Same", "client_visible": True},
                         actor=world.owner, source=SOURCE)  # fmt: skip
    envs = list(Environment.objects.filter(project=project).order_by("pk"))[:2]
    keys = [apikey_services.provision(e, kind="client", name="c", created_by=world.owner)[1]
            for e in envs]  # fmt: skip
    return keys[0], keys[1]


def test_the_bulk_etag_includes_the_environment(client: Client, world: World) -> None:
    first, second = _two_identical_environments(world)
    a = bulk(client, first, {"targetingKey": "alice"})
    b = bulk(client, second, {"targetingKey": "alice"})
    assert a.content == b.content  # the same answer...
    assert a["ETag"] != b["ETag"]  # ...in two environments: two tags
    crossed = bulk(client, second, {"targetingKey": "alice"}, HTTP_IF_NONE_MATCH=a["ETag"])
    assert crossed.status_code == 200


def test_the_bulk_etag_ignores_flags_the_caller_cannot_see(client: Client, world: World) -> None:
    context = {"targetingKey": "alice"}
    before = bulk(client, world.keys["client"], context)
    # internal-tool is not client-visible: a change to it is not the client's business.
    enable(world, "internal-tool", world.dev, default_serve={"variant": "off"})
    after = bulk(client, world.keys["client"], context)
    assert after.content == before.content
    assert after["ETag"] == before["ETag"]
    unchanged = bulk(client, world.keys["client"], context, HTTP_IF_NONE_MATCH=before["ETag"])
    assert unchanged.status_code == 304
    # The server key sees it, so its tag moves.
    server_before = bulk(client, world.keys["server"], context)["ETag"]
    enable(world, "internal-tool", world.dev, default_serve={"variant": "on"})
    assert bulk(client, world.keys["server"], context)["ETag"] != server_before
    # And a visible flag's change moves the client's tag too.
    enable(world, "banner", world.dev, default_serve={"variant": "off"})
    assert bulk(client, world.keys["client"], context)["ETag"] != before["ETag"]


@pytest.mark.parametrize(
    ("bucket_by", "context", "code"),
    [
        (None, {"plan": "pro"}, "TARGETING_KEY_MISSING"),
        ("targetingKey", {"targetingKey": ""}, "TARGETING_KEY_MISSING"),
        ("accountId", {"targetingKey": "alice"}, "INVALID_CONTEXT"),
        ("accountId", {}, "INVALID_CONTEXT"),
    ],
)
def test_a_missing_bucketing_attribute(
    client: Client, world: World, bucket_by: str | None, context: dict[str, Any], code: str
) -> None:
    rollout: dict[str, Any] = {"variants": [{"variant": "on", "weight": 50_000},
                                            {"variant": "off", "weight": 50_000}]}  # fmt: skip
    if bucket_by:
        rollout["bucketBy"] = bucket_by
    enable(world, "internal-tool", world.dev, default_serve={"rollout": rollout})
    raw = json.dumps({"context": context}).encode()
    single = post(client, world.keys["server"], "/internal-tool", raw)
    assert single.status_code == 400, single.content
    assert single.json()["errorCode"] == code
    items = post(client, world.keys["server"], "", raw).json()["flags"]
    [item] = [i for i in items if i["key"] == "internal-tool"]
    assert item["errorCode"] == code
