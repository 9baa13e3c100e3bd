"""A project with a flag and one user per role, for the admin and service tests."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from django.contrib.auth.models import User

from flags.models import Environment, Flag, FlagState, Project
from tests.factories import FlagFactory, ProjectFactory, UserFactory, grant

ROLES = ("viewer", "editor", "release_manager", "owner")


@dataclass
class World:
    project: Project
    flag: Flag
    users: dict[str, User]

    def env(self, key: str) -> Environment:
        return Environment.objects.get(project=self.project, key=key)

    def state(self, env_key: str) -> FlagState:
        return FlagState.objects.get(flag=self.flag, environment__key=env_key)


@pytest.fixture
def world(db: None) -> World:
    project = ProjectFactory.create(key="shop")
    flag = FlagFactory.create(project=project, key="new-pdf-engine")
    users = {}
    for role in ROLES:
        users[role] = UserFactory.create(username=role.replace("_", "-"))
        grant(users[role], project, role)
    users["outsider"] = UserFactory.create(username="outsider")
    return World(project, flag, users)
