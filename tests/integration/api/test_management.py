"""Management: validation errors with paths, 409 on stale versions, kill, history, revert,
roles and key scoping."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client

from apikeys.services import provision
from flags import roles
from tests.integration.api.conftest import World

pytestmark = pytest.mark.integration
BASE = "/api/v1/projects/shop"
STATE = f"{BASE}/flags/banner/environments/development"


def send(client: Client, world: World, method: str, url: str, body=None, kind="management"):
    call = getattr(client, method)
    return call(url, body, content_type="application/json", **world.auth(kind))


def test_list_filter_and_paginate_flags(client: Client, world: World) -> None:
    page = send(client, world, "get", f"{BASE}/flags?limit=2").json()
    assert page["count"] == 3
    assert [f["key"] for f in page["results"]] == ["banner", "internal-tool"]
    assert page["next"]
    visible = send(client, world, "get", f"{BASE}/flags?clientVisible=true").json()
    assert {f["key"] for f in visible["results"]} == {"banner", "new-checkout"}
    states = send(client, world, "get", f"{BASE}/environments/development/flags").json()
    assert states["count"] == 3


def test_validation_errors_name_their_paths(client: Client, world: World) -> None:
    state = send(client, world, "get", STATE).json()
    bad_condition = {"attribute": "plan", "operator": "nope", "values": ["x"]}
    bad_rules = [{"id": "r1", "conditions": [bad_condition], "serve": {"variant": "ghost"}}]
    response = send(
        client, world, "patch", STATE, {"version": state["version"], "rules": bad_rules}
    )
    assert response.status_code == 400, response.content
    paths = {e["path"] for e in response.json()["errors"]}
    assert any(p.startswith("rules[0].conditions[0]") for p in paths), paths
    ghost = [{"id": "r1", "conditions": [], "serve": {"variant": "ghost"}}]
    unknown = send(client, world, "patch", STATE, {"version": state["version"], "rules": ghost})
    assert unknown.status_code == 400
    assert unknown.json()["errors"][0]["path"].startswith("rules[0].serve"), unknown.json()
    bad_type = send(
        client, world, "patch", STATE, {"version": state["version"], "enabled": "maybe"}
    )
    assert bad_type.status_code == 400
    assert bad_type.json()["errors"][0]["path"] == "enabled"
    missing = send(client, world, "post", f"{BASE}/flags", {"name": "No key"})
    assert missing.status_code == 400
    assert missing.json() == {"errors": [{"path": "key", "message": "This field is required."}]}


def test_a_stale_version_gets_409(client: Client, world: World) -> None:
    version = send(client, world, "get", STATE).json()["version"]
    first = send(client, world, "patch", STATE, {"version": version, "offVariant": "sale"})
    assert first.status_code == 200, first.content
    assert first.json()["version"] == version + 1
    stale = send(client, world, "patch", STATE, {"version": version, "offVariant": "off"})
    assert stale.status_code == 409
    assert stale.json()["currentVersion"] == version + 1
    flag = send(client, world, "get", f"{BASE}/flags/banner").json()
    conflict = send(client, world, "patch", f"{BASE}/flags/banner",
                    {"version": flag["version"] - 1, "name": "x"})  # fmt: skip
    assert conflict.status_code == 409
    assert conflict.json()["currentVersion"] == flag["version"]


def test_kill_history_and_revert(client: Client, world: World) -> None:
    killed = send(client, world, "post", f"{STATE}/kill", {"reason": "incident 42"})
    assert killed.status_code == 200, killed.content
    assert killed.json()["enabled"] is False
    assert send(client, world, "post", f"{STATE}/kill", {}).json()["errors"][0]["path"] == "reason"
    history = send(client, world, "get", f"{STATE}/history").json()["results"]
    assert history[0]["reason"].startswith("incident 42")
    assert history[0]["source"] == "api"
    enabled_before = next(h for h in history if h["enabled"])
    no_version = send(client, world, "post", f"{STATE}/revert",
                      {"historyId": enabled_before["historyId"], "reason": "fixed"})  # fmt: skip
    assert no_version.status_code == 400
    assert no_version.json()["errors"][0]["path"] == "version"
    reverted = send(client, world, "post", f"{STATE}/revert",
                    {"historyId": enabled_before["historyId"], "reason": "fixed",
                     "version": history[0]["version"]})  # fmt: skip
    assert reverted.status_code == 200, reverted.content
    assert reverted.json()["enabled"] is True
    evaluated = send(client, world, "post", "/api/v1/evaluate", {"flag": "banner"}, kind="server")
    assert evaluated.json()["value"] == "50% off"


def test_management_keys_are_scoped_and_act_as_their_creator(client: Client, world: World) -> None:
    other_env = f"{BASE}/flags/banner/environments/production"
    response = send(client, world, "get", other_env)
    assert response.status_code == 403
    assert "development" in response.json()["detail"]
    assert send(client, world, "get", STATE, kind="server").status_code == 403
    viewer = User.objects.create_user("viewer", password="pw-viewer-123")
    roles.grant_role(viewer, world.project, roles.Role.VIEWER)
    _, raw = provision(environment=world.dev, kind="management", name="v", created_by=viewer)
    headers: dict[str, Any] = {"HTTP_AUTHORIZATION": f"Bearer {raw}"}
    assert client.get(STATE, **headers).status_code == 200
    denied = client.post(
        f"{STATE}/kill", {"reason": "x"}, content_type="application/json", **headers
    )
    assert denied.status_code == 403


def test_segments_and_environments(client: Client, world: World) -> None:
    created = send(client, world, "post", f"{BASE}/segments",
                   {"key": "beta", "name": "Beta", "included": ["u1"]})  # fmt: skip
    assert created.status_code == 201, created.content
    seg = send(client, world, "get", f"{BASE}/segments/beta").json()
    patched = send(client, world, "patch", f"{BASE}/segments/beta",
                   {"version": seg["version"], "excluded": ["u2"], "reason": "r"})  # fmt: skip
    assert patched.json()["excluded"] == ["u2"]
    envs = send(client, world, "get", f"{BASE}/environments").json()["results"]
    assert [e["key"] for e in envs] == ["development", "staging", "production"]
    env_url = f"{BASE}/environments/development"  # the management key's environment
    version = send(client, world, "get", env_url).json()["version"]
    missing = send(client, world, "patch", env_url, {"requiresApproval": True})
    assert missing.status_code == 400
    assert missing.json()["errors"][0]["path"] == "version"
    ok = send(client, world, "patch", env_url, {"requiresApproval": True, "version": version})
    assert ok.status_code == 200, ok.content
    assert ok.json()["version"] == version + 1
    stale = send(client, world, "patch", env_url, {"name": "Stage", "version": version})
    assert stale.status_code == 409
    assert send(client, world, "get", env_url).json()["name"] == "Development"


def test_openapi_schema_and_swagger(client: Client, world: World) -> None:
    client.force_login(world.owner)
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert schema.status_code == 200
    assert "/api/v1/evaluate" in schema.json()["paths"]
    assert "/ofrep/v1/evaluate/flags/{key}" in schema.json()["paths"]
    assert client.get("/api/docs/").status_code == 200
