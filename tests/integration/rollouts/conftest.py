"""Fixtures: a project with a boolean flag, people in each role."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from django.contrib.auth.models import User

from flags import roles
from flags import services as flag_services
from flags.models import Environment, FlagState, Project
from tests.integration.rollouts.workers import workers  # noqa: F401  (a fixture of this package)

SYSTEM = flag_services.Actor.automation("tests")


@dataclass
class World:
    project: Project
    env: Environment
    state: FlagState
    manager: User
    other_manager: User
    viewer: User


@pytest.fixture
def world(db: None) -> World:
    project = flag_services.create_project(
        key="shop", name="Shop", actor=SYSTEM, source="system", reason="test"
    )
    flag = flag_services.create_flag(
        project, data={"key": "pdf", "name": "PDF"}, actor=SYSTEM, source="system", reason="t"
    )
    env = Environment.objects.get(project=project, key="staging")
    users = []
    for name, role in (("rm1", "release_manager"), ("rm2", "release_manager"), ("v", "viewer")):
        user = User.objects.create_user(name, password="x-unused-x")
        roles.grant_role(user, project, role)
        users.append(user)
    state = FlagState.objects.select_related("flag", "environment").get(flag=flag, environment=env)
    return World(project, env, state, *users)
