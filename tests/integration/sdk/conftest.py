"""A project with one boolean flag in development, keys for it, and helpers to change it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from django.contrib.auth.models import User
from flagsite_sdk import FlagsiteClient

from apikeys.services import provision
from flags import services
from flags.models import Environment, Project
from tests.support.processes import ServerProcess

FLAG = "checkout"
STATE_PATH = f"/api/v1/projects/shop/flags/{FLAG}/environments/development"


@dataclass
class SdkWorld:
    owner: User
    project: Project
    environment: Environment
    server_key: str
    management_key: str
    clients: list[FlagsiteClient] = field(default_factory=list)

    def client(self, url: str, **options: Any) -> FlagsiteClient:
        """A client closed at the end of the test; streams with a short dead-stream timeout."""
        options.setdefault("stream_read_timeout", 3.0)
        options.setdefault("init_timeout", 10.0)
        client = FlagsiteClient(url, self.server_key, **options)
        self.clients.append(client)
        return client

    def set_enabled(self, url: str, enabled: bool) -> None:
        """Changes the flag through the management API, as an operator would."""
        headers = {"Authorization": f"Bearer {self.management_key}"}
        state = httpx.get(url + STATE_PATH, headers=headers, timeout=10).json()
        response = httpx.patch(
            url + STATE_PATH,
            json={"version": state["version"], "enabled": enabled},
            headers=headers,
            timeout=10,
        )
        assert response.status_code == 200, response.text

    def set_enabled_in_database(self, enabled: bool) -> None:
        """Changes the flag without any server running (during an outage)."""
        state = services.get_state(self.project.flags.get(key=FLAG), self.environment)
        services.update_flag_state(
            state,
            changes={"enabled": enabled},
            expected_version=state.version,
            actor=self.owner,
            source=services.Source.API,
            reason="sdk test",
        )


@pytest.fixture
def sdk_world(transactional_db: None) -> Iterator[SdkWorld]:
    owner = User.objects.create_superuser("owner", "owner@example.com", "pw-owner-123")
    project = services.create_project(
        key="shop", name="Shop", actor=owner, source=services.Source.API
    )
    environment = Environment.objects.get(project=project, key="development")
    services.create_flag(
        project, data={"key": FLAG, "name": "Checkout"}, actor=owner, source=services.Source.API
    )
    state = services.get_state(project.flags.get(key=FLAG), environment)
    services.update_flag_state(
        state,
        changes={"enabled": False, "default_serve": {"variant": "on"}},
        expected_version=state.version,
        actor=owner,
        source=services.Source.API,
    )
    _, server_key = provision(environment=environment, kind="server", name="sdk", created_by=owner)
    _, mgmt_key = provision(
        environment=environment, kind="management", name="ops", created_by=owner
    )
    world = SdkWorld(owner, project, environment, server_key, mgmt_key)
    yield world
    for client in world.clients:
        client.close(timeout=2)


@pytest.fixture
def fast_server(server_factory: Callable[..., ServerProcess]) -> ServerProcess:
    """A server of this test's own, heartbeating every second so dead streams show quickly."""
    return server_factory(extra_env={"FLAGSITE_SSE_HEARTBEAT_SECONDS": "1"})
