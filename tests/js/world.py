"""The demo project (seed_demo) with API keys, for the JS SDK tests against a real server."""

from __future__ import annotations

from dataclasses import dataclass

from django.contrib.auth.models import User
from django.core.management import call_command

from apikeys.services import provision
from flags.models import Environment


@dataclass
class DemoWorld:
    environment: Environment
    server_key: str
    client_key: str
    management_key: str

    def kill_path(self, flag: str) -> str:
        return f"/api/v1/projects/demo/flags/{flag}/environments/{self.environment.key}/kill"

    def state_path(self, flag: str) -> str:
        return f"/api/v1/projects/demo/flags/{flag}/environments/{self.environment.key}"


def demo_world(environment: str = "development") -> DemoWorld:
    with open("/dev/null", "w") as quiet:
        call_command("seed_demo", stdout=quiet)
    env = Environment.objects.get(project__key="demo", key=environment)
    admin = User.objects.get(username="admin")
    keys = {
        kind: provision(env, kind=kind, name=f"js tests {kind}", created_by=admin)[1]
        for kind in ("server", "client", "management")
    }
    return DemoWorld(env, keys["server"], keys["client"], keys["management"])
