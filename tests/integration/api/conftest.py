"""A project with flags in every environment, and keys of each kind."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from django.contrib.auth.models import User

from apikeys import authentication
from apikeys.services import provision
from flags import evaluation, services
from flags.models import Environment, Flag, FlagState, Project

SOURCE = services.Source.API


@dataclass
class World:
    owner: User
    project: Project
    dev: Environment
    prod: Environment
    keys: dict[str, str]  # "server", "client", "management", "prod-server" -> raw key

    def auth(self, kind: str) -> dict[str, Any]:
        return {"HTTP_AUTHORIZATION": f"Bearer {self.keys[kind]}"}

    def headers(self, kind: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[kind]}"}

    def state(self, flag_key: str, env: Environment | None = None) -> FlagState:
        return FlagState.objects.get(flag__key=flag_key, environment=env or self.dev)


def enable(world: World, flag_key: str, env: Environment, **changes: Any) -> FlagState:
    state = world.state(flag_key, env)
    return services.update_flag_state(
        state,
        changes={"enabled": True, **changes},
        expected_version=state.version,
        actor=world.owner,
        source=SOURCE,
        reason="test",
    )


def build_world() -> World:
    owner = User.objects.create_superuser("owner", "owner@example.com", "pw-owner-123")
    project = services.create_project(key="shop", name="Shop", actor=owner, source=SOURCE)
    dev = Environment.objects.get(project=project, key="development")
    prod = Environment.objects.get(project=project, key="production")
    services.create_segment(
        project,
        data={"key": "staff", "name": "Staff", "included": ["alice"]},
        actor=owner,
        source=SOURCE,
    )
    services.create_flag(
        project,
        data={"key": "new-checkout", "name": "New checkout", "client_visible": True},
        actor=owner,
        source=SOURCE,
    )
    services.create_flag(
        project,
        data={"key": "internal-tool", "name": "Internal tool"},
        actor=owner,
        source=SOURCE,
    )
    services.create_flag(
        project,
        data={
            "key": "banner",
            "name": "Banner",
            "value_type": Flag.ValueType.STRING,
            "variants": {"off": "", "sale": "50% off"},
            "client_visible": True,
        },
        actor=owner,
        source=SOURCE,
    )
    world = World(owner, project, dev, prod, {})
    staff_rule = [
        {
            "id": "staff",
            "conditions": [{"operator": "in_segment", "values": ["staff"]}],
            "serve": {"variant": "on"},
        }
    ]
    enable(world, "new-checkout", dev, rules=staff_rule, default_serve={"variant": "off"})
    enable(world, "internal-tool", dev, default_serve={"variant": "on"})
    enable(world, "banner", dev, default_serve={"variant": "sale"})
    for kind in ("server", "client", "management"):
        _, raw = provision(environment=dev, kind=kind, name=kind, created_by=owner)
        world.keys[kind] = raw
    _, world.keys["prod-server"] = provision(
        environment=prod, kind="server", name="prod", created_by=owner
    )
    return world


@pytest.fixture(autouse=True)
def _fresh_caches() -> Any:
    evaluation.clear()
    authentication.forget_key(None)
    yield
    evaluation.clear()
    authentication.forget_key(None)


@pytest.fixture
def world(db: None) -> World:
    return build_world()
