"""OFREP responses have the protocol's shapes (open-feature/protocol service/openapi.yaml)."""

from __future__ import annotations

import pytest
from django.test import Client

from tests.integration.api.conftest import World

pytestmark = pytest.mark.integration
SUCCESS_KEYS = {"key", "value", "reason", "variant", "metadata"}


def ofrep(client: Client, world: World, path: str, body: object, kind: str = "server", **extra):
    headers = {"HTTP_X_API_KEY": world.keys[kind], **extra}
    return client.post(
        f"/ofrep/v1/evaluate/flags{path}", body, content_type="application/json", **headers
    )


def test_single_success(client: Client, world: World) -> None:
    response = ofrep(client, world, "/new-checkout", {"context": {"targetingKey": "alice"}})
    assert response.status_code == 200
    body = response.json()
    assert set(body) == SUCCESS_KEYS
    assert (body["key"], body["value"], body["variant"]) == ("new-checkout", True, "on")
    assert body["reason"] == "TARGETING_MATCH"
    assert all(isinstance(v, bool | str | int | float) for v in body["metadata"].values())


def test_single_not_found_and_bad_context(client: Client, world: World) -> None:
    missing = ofrep(client, world, "/ghost", {"context": {}})
    assert missing.status_code == 404
    assert missing.json()["key"] == "ghost"
    assert missing.json()["errorCode"] == "FLAG_NOT_FOUND"
    bad = ofrep(client, world, "/banner", {"context": "nope"})
    assert bad.status_code == 400
    assert bad.json()["errorCode"] == "INVALID_CONTEXT"
    assert isinstance(bad.json()["errorDetails"], str)
    hidden = ofrep(client, world, "/internal-tool", {"context": {}}, kind="client")
    assert hidden.status_code == 404


def test_bulk_with_etag(client: Client, world: World) -> None:
    body = {"context": {"targetingKey": "alice"}}
    response = ofrep(client, world, "", body, kind="client")
    assert response.status_code == 200
    flags = response.json()["flags"]
    assert {f["key"] for f in flags} == {"new-checkout", "banner"}
    assert all(set(f) == SUCCESS_KEYS for f in flags)
    etag = response["ETag"]
    again = ofrep(client, world, "", body, kind="client", HTTP_IF_NONE_MATCH=etag)
    assert again.status_code == 304
    other = ofrep(client, world, "", {"context": {"targetingKey": "bob"}}, kind="client",
                  HTTP_IF_NONE_MATCH=etag)  # fmt: skip
    assert other.status_code == 200
    assert ofrep(client, world, "", {"context": 3}).status_code == 400


def test_auth_failures_are_401_and_403(client: Client, world: World) -> None:
    no_key = client.post("/ofrep/v1/evaluate/flags/banner", {}, content_type="application/json")
    assert no_key.status_code == 401
    assert ofrep(client, world, "/banner", {}, kind="management").status_code == 403


def test_configuration(client: Client, world: World) -> None:
    response = client.get("/ofrep/v1/configuration", HTTP_X_API_KEY=world.keys["client"])
    assert response.status_code == 200
    assert response.json()["name"] == "flagsite"
