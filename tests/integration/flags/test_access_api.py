"""Role grants and API keys over the management API: owners only, a reason on every write,
bad input named, stale versions refused, the raw key in the issuing response only."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.test import Client

from apikeys import services as apikey_services
from apikeys.models import ApiKey
from flags import roles
from flags.models import RoleGrant
from tests.integration.flags.conftest import World

GRANTS = "/api/v1/projects/shop/role-grants"
KEYS = "/api/v1/projects/shop/environments/development/api-keys"
KEYS_PATH = "/api/v1/projects/{project}/environments/{env}/api-keys"


def signed_in(world: World, role: str) -> Client:
    client = Client()
    client.force_login(world.users[role])
    return client


def call(client: Client, method: str, url: str, body: Any = None, **extra: Any) -> Any:
    return getattr(client, method)(url, body, content_type="application/json", **extra)


def paths(response: Any) -> list[str]:
    assert response.status_code == 400, response.content
    return [e["path"] for e in response.json()["errors"]]


def may(user: User, action: roles.Action, obj: object) -> bool:
    # A fresh user object: permission checks are cached per instance.
    return roles.can(User.objects.get(pk=user.pk), action, obj)


@pytest.fixture
def newcomer(db: None) -> User:
    return User.objects.create(username="newcomer")


def test_an_owner_grants_changes_and_revokes_a_role(world: World, newcomer: User) -> None:
    owner = signed_in(world, "owner")
    created = call(owner, "post", GRANTS, {"user": "newcomer", "role": "viewer",
                                           "reason": "joins support"})  # fmt: skip
    assert created.status_code == 201, created.content
    grant = created.json()
    assert (grant["role"], grant["environments"], grant["version"]) == ("viewer", [], 1)
    assert may(newcomer, "view", world.state("production"))
    record = RoleGrant.history.filter(id=grant["id"]).latest("history_id")
    assert (record.history_source, record.history_user) == ("api", world.users["owner"])
    assert record.history_change_reason.startswith("joins support")
    listed = call(owner, "get", GRANTS).json()["results"]
    assert "newcomer" in [g["user"] for g in listed]

    url = f"{GRANTS}/{grant['id']}"
    again = call(owner, "post", GRANTS, {"user": "newcomer", "role": "owner", "reason": "x"})
    assert again.status_code == 409
    assert url in again.json()["detail"]
    change = {"role": "editor", "environments": ["development"], "reason": "helps dev"}
    assert call(owner, "patch", url, {**change, "version": 0}).status_code == 409
    changed = call(owner, "patch", url, {**change, "version": 1})
    assert changed.status_code == 200, changed.content
    assert (changed.json()["role"], changed.json()["environments"]) == ("editor", ["development"])
    assert may(newcomer, "edit_state", world.state("development"))
    assert not may(newcomer, "view", world.state("production"))

    assert paths(call(owner, "delete", f"{url}?reason=left")) == ["version"]
    assert call(owner, "delete", f"{url}?version=1&reason=left").status_code == 409
    assert call(owner, "delete", f"{url}?version=2&reason=left").status_code == 204
    assert not RoleGrant.objects.filter(pk=grant["id"]).exists()
    assert not may(newcomer, "view", world.state("development"))


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"user": "nobody", "role": "viewer", "reason": "r"}, "user"),
        ({"user": "newcomer", "role": "admin", "reason": "r"}, "role"),
        ({"user": "newcomer", "role": "viewer", "reason": ""}, "reason"),
        ({"user": "newcomer", "role": "viewer", "environments": ["moon"], "reason": "r"},
         "environments"),
        ({"user": "newcomer", "role": "viewer", "environments": "development", "reason": "r"},
         "environments"),
    ],
)  # fmt: skip
def test_bad_grant_input_is_a_400_naming_the_field(
    world: World, newcomer: User, body: dict[str, Any], field: str
) -> None:
    assert paths(call(signed_in(world, "owner"), "post", GRANTS, body)) == [field]
    assert not RoleGrant.objects.filter(user=newcomer).exists()


def test_a_change_without_a_version_or_a_reason_is_refused(world: World) -> None:
    grant = RoleGrant.objects.get(user=world.users["viewer"])
    url = f"{GRANTS}/{grant.pk}"
    owner = signed_in(world, "owner")
    assert paths(call(owner, "patch", url, {"role": "editor", "reason": "r"})) == ["version"]
    assert paths(call(owner, "patch", url, {"role": "editor", "version": 1})) == ["reason"]
    assert RoleGrant.objects.get(pk=grant.pk).role == "viewer"


def test_only_a_signed_in_owner_manages_roles(world: World, newcomer: User) -> None:
    body = {"user": "newcomer", "role": "owner", "reason": "promote myself"}
    for role in ("viewer", "editor", "release_manager"):
        client = signed_in(world, role)
        assert call(client, "get", GRANTS).status_code == 403
        assert call(client, "post", GRANTS, body).status_code == 403
    _, raw = apikey_services.provision(world.env("development"), kind="management", name="m",
                                       created_by=world.users["owner"])  # fmt: skip
    by_key = call(Client(), "post", GRANTS, body, HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert by_key.status_code == 403
    assert "API key" in by_key.json()["detail"]
    assert not RoleGrant.objects.filter(user=newcomer).exists()


def test_an_owner_issues_a_key_shown_once_and_revokes_it(world: World) -> None:
    owner = signed_in(world, "owner")
    issued = call(owner, "post", KEYS, {"kind": "server", "name": "checkout", "reason": "new svc"})
    assert issued.status_code == 201, issued.content
    body = issued.json()
    raw = body["key"]
    assert raw.startswith("fs_srv_")
    assert raw.startswith(body["prefix"])
    assert "no-store" in issued["Cache-Control"]
    sdk = Client()
    assert sdk.get("/api/v1/sdk/ruleset", HTTP_AUTHORIZATION=f"Bearer {raw}").status_code == 200
    listed = call(owner, "get", KEYS).json()["results"]
    assert [k["name"] for k in listed] == ["checkout"]
    assert "key" not in listed[0]
    assert raw not in str(listed)
    record = ApiKey.history.filter(id=body["id"]).get()
    assert (record.history_source, record.history_change_reason) == ("api", "new svc")

    revoke = f"{KEYS}/{body['id']}/revoke"
    assert paths(call(owner, "post", revoke, {})) == ["reason"]
    revoked = call(owner, "post", revoke, {"reason": "leaked"})
    assert revoked.status_code == 200
    assert revoked.json()["revokedAt"] is not None
    assert sdk.get("/api/v1/sdk/ruleset", HTTP_AUTHORIZATION=f"Bearer {raw}").status_code == 401


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"kind": "root", "name": "n", "reason": "r"}, "kind"),
        ({"kind": "server", "name": " ", "reason": "r"}, "name"),
        ({"kind": "server", "name": "n"}, "reason"),
    ],
)
def test_bad_key_input_is_a_400_naming_the_field(
    world: World, body: dict[str, Any], field: str
) -> None:
    assert paths(call(signed_in(world, "owner"), "post", KEYS, body)) == [field]
    assert not ApiKey.objects.exists()


def test_keys_are_for_owners_and_a_key_never_mints_a_management_key(world: World) -> None:
    body = {"kind": "server", "name": "n", "reason": "r"}
    for role in ("viewer", "editor", "release_manager"):
        assert call(signed_in(world, role), "post", KEYS, body).status_code == 403
        assert call(signed_in(world, role), "get", KEYS).status_code == 403
    _, raw = apikey_services.provision(world.env("development"), kind="management", name="m",
                                       created_by=world.users["owner"])  # fmt: skip
    auth = {"HTTP_AUTHORIZATION": f"Bearer {raw}"}
    assert call(Client(), "post", KEYS, body, **auth).status_code == 201
    mint = call(Client(), "post", KEYS, {**body, "kind": "management"}, **auth)
    assert mint.status_code == 403
    elsewhere = KEYS.replace("development", "production")
    assert call(Client(), "post", elsewhere, body, **auth).status_code == 403
    assert ApiKey.objects.filter(kind="management").count() == 1


def test_the_openapi_document_describes_the_access_endpoints(tmp_path: Path) -> None:
    out = tmp_path / "schema.json"
    call_command("spectacular", "--format", "openapi-json", "--file", str(out))
    paths = json.loads(out.read_text())["paths"]
    grants, keys = "/api/v1/projects/{project}/role-grants", KEYS_PATH
    operations = {
        (paths[grants]["get"]["operationId"], paths[grants]["post"]["operationId"]),
        (paths[f"{grants}/{{id}}"]["patch"]["operationId"],
         paths[f"{grants}/{{id}}"]["delete"]["operationId"]),
        (paths[keys]["get"]["operationId"], paths[keys]["post"]["operationId"]),
    }  # fmt: skip
    assert operations == {
        ("role_grants_list", "role_grant_create"),
        ("role_grant_update", "role_grant_revoke"),
        ("api_keys_list", "api_key_issue"),
    }
    assert paths[f"{keys}/{{id}}/revoke"]["post"]["operationId"] == "api_key_revoke"
    assert {"400", "403", "409"} <= set(paths[f"{grants}/{{id}}"]["patch"]["responses"])
    issued = paths[keys]["post"]["responses"]["201"]["content"]["application/json"]["schema"]
    assert issued["$ref"].endswith("/IssuedOut")
