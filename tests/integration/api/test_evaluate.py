"""Evaluation and SDK ruleset endpoints: key scoping, details, zero queries, ETags."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest
from django.test import Client

from apikeys.models import ApiKey
from tests.integration.api.conftest import World

pytestmark = pytest.mark.integration


def evaluate(client: Client, world: World, kind: str, body: Mapping[str, Any]):
    return client.post(
        "/api/v1/evaluate", body, content_type="application/json", **world.auth(kind)
    )


def test_one_flag_carries_the_engine_details(client: Client, world: World) -> None:
    body = {"flag": "new-checkout", "context": {"targetingKey": "alice"}, "default": False}
    response = evaluate(client, world, "server", body)
    assert response.status_code == 200, response.content
    assert response.json() == {
        "flagKey": "new-checkout",
        "value": True,
        "variant": "on",
        "reason": "TARGETING_MATCH",
        "errorCode": None,
        "errorMessage": None,
        "flagVersion": response.json()["flagVersion"],
        "ruleId": "staff",
    }
    other = evaluate(client, world, "server", {**body, "context": {"targetingKey": "bob"}}).json()
    assert (other["value"], other["reason"]) == (False, "DEFAULT")


def test_a_list_of_flags(client: Client, world: World) -> None:
    body = {"flags": ["banner", "nope"], "context": {"targetingKey": "bob"}}
    response = evaluate(client, world, "server", body)
    assert response.status_code == 200
    flags = response.json()["flags"]
    assert [f["flagKey"] for f in flags] == ["banner", "nope"]
    assert flags[0]["value"] == "50% off"
    assert flags[1]["errorCode"] == "FLAG_NOT_FOUND"


def test_evaluation_makes_zero_queries(
    client: Client, world: World, django_assert_num_queries
) -> None:
    body = {"flags": ["new-checkout", "banner"], "context": {"targetingKey": "alice"}}
    for kind in ("server", "client"):
        assert evaluate(client, world, kind, body).status_code == 200  # warms both caches
    client.post("/api/v1/evaluate/all", {}, content_type="application/json", **world.auth("client"))
    with django_assert_num_queries(0):
        for kind in ("server", "client"):
            assert evaluate(client, world, kind, body).status_code == 200
            all_flags = client.post(
                "/api/v1/evaluate/all", {"context": {}}, content_type="application/json",
                **world.auth(kind),
            )  # fmt: skip
            assert all_flags.status_code == 200
        assert client.get("/api/v1/sdk/ruleset", **world.auth("server")).status_code == 200


def test_client_keys_see_only_client_visible_flags(client: Client, world: World) -> None:
    hidden = evaluate(client, world, "client", {"flag": "internal-tool", "default": False}).json()
    assert hidden["errorCode"] == "FLAG_NOT_FOUND"
    assert hidden["value"] is False
    shown = evaluate(
        client, world, "client", {"flag": "new-checkout", "context": {"targetingKey": "alice"}}
    )
    assert shown.json()["value"] is True
    assert "ruleId" not in shown.json()


def test_bulk_returns_every_client_visible_flag(client: Client, world: World) -> None:
    response = client.post(
        "/api/v1/evaluate/all", {"context": {"targetingKey": "alice"}},
        content_type="application/json", **world.auth("client"),
    )  # fmt: skip
    assert response.status_code == 200
    body = response.json()
    assert set(body["flags"]) == {"new-checkout", "banner"}
    assert body["flags"]["new-checkout"]["value"] is True


def test_client_keys_cannot_read_rules(client: Client, world: World) -> None:
    response = client.get("/api/v1/sdk/ruleset", **world.auth("client"))
    assert response.status_code == 403
    assert "server" in response.json()["detail"]
    assert b"staff" not in response.content
    # The stream is open to client keys but carries versions only: tests/js/test_client_stream.py


def test_wrong_missing_revoked_and_wrong_kind_keys(client: Client, world: World) -> None:
    assert evaluate(client, world, "management", {"flag": "banner"}).status_code == 403
    anonymous = client.post("/api/v1/evaluate", {"flag": "banner"}, content_type="application/json")
    assert anonymous.status_code == 401
    assert anonymous.json()["detail"]
    bad = client.post(
        "/api/v1/evaluate", {"flag": "banner"}, content_type="application/json",
        HTTP_AUTHORIZATION="Bearer fs_srv_not-a-real-key",
    )  # fmt: skip
    assert bad.status_code == 401
    assert bad.json() == {"detail": "Unknown or revoked API key."}
    assert evaluate(client, world, "server", {"flag": "banner"}).status_code == 200
    from apikeys import services as key_services

    key_services.revoke(ApiKey.objects.get(name="server"), actor=world.owner, reason="leaked")
    assert evaluate(client, world, "server", {"flag": "banner"}).status_code == 401


def test_a_key_serves_only_its_own_environment(client: Client, world: World) -> None:
    dev = client.get("/api/v1/sdk/ruleset", **world.auth("server")).json()
    prod = client.get("/api/v1/sdk/ruleset", **world.auth("prod-server")).json()
    assert (dev["environment"], prod["environment"]) == ("development", "production")
    assert dev["flags"]["banner"]["enabled"] is True
    assert prod["flags"]["banner"]["enabled"] is False


def test_ruleset_etag_and_304(client: Client, world: World) -> None:
    first = client.get("/api/v1/sdk/ruleset", **world.auth("server"))
    assert first.status_code == 200
    etag = first["ETag"]
    assert etag == f'"{first.json()["version"]}"'
    again = client.get("/api/v1/sdk/ruleset", HTTP_IF_NONE_MATCH=etag, **world.auth("server"))
    assert again.status_code == 304
    assert again["ETag"] == etag
    stale = client.get("/api/v1/sdk/ruleset", HTTP_IF_NONE_MATCH='"0"', **world.auth("server"))
    assert stale.status_code == 200


def test_bad_bodies_name_their_paths(client: Client, world: World) -> None:
    response = evaluate(client, world, "server", {"flag": "banner", "context": [1]})
    assert response.status_code == 400
    assert response.json() == {"errors": [{"path": "context", "message": "Must be a JSON object."}]}
