# mypy: disallow-untyped-calls=False
"""Factories shared by the test suites. Flags, segments and projects are made through
flags.services (as automation), so rulesets and history are what the product would make."""

from __future__ import annotations

from functools import cache
from typing import Any

from django.contrib.auth.hashers import make_password
from django.contrib.auth.models import User
from factory.declarations import LazyAttribute, LazyFunction, Sequence, SubFactory
from factory.django import DjangoModelFactory

from flags import roles, services
from flags.models import Environment, Flag, FlagState, Project, RoleGrant, Segment

PASSWORD = "flagsite-test-password"
FACTORY = services.Actor.automation("factory")
SYSTEM = services.Source.SYSTEM


@cache
def _password_hash() -> str:
    # Hashing is slow on purpose; one hash serves every test user.
    return make_password(PASSWORD)


class UserFactory(DjangoModelFactory[User]):
    class Meta:
        model = User
        django_get_or_create = ("username",)
        skip_postgeneration_save = True

    username = Sequence(lambda n: f"user{n}")
    email = LazyAttribute(lambda u: f"{u.username}@example.test")
    is_staff = True
    password = LazyFunction(lambda: _password_hash())


class ProjectFactory(DjangoModelFactory[Project]):
    """A project with development, staging and production environments."""

    class Meta:
        model = Project

    key = Sequence(lambda n: f"project-{n}")
    name = LazyAttribute(lambda p: p.key.title())

    @classmethod
    def _create(cls, model_class: Any, *args: Any, **kwargs: Any) -> Project:
        return services.create_project(
            key=kwargs["key"], name=kwargs["name"], actor=FACTORY, source=SYSTEM
        )


class EnvironmentFactory(DjangoModelFactory[Environment]):
    class Meta:
        model = Environment

    project = SubFactory(ProjectFactory)
    key = Sequence(lambda n: f"env-{n}")
    name = LazyAttribute(lambda e: e.key.title())
    sort_order = 10
    is_production = False
    requires_approval = False

    @classmethod
    def _create(cls, model_class: Any, *args: Any, **kwargs: Any) -> Environment:
        project = kwargs.pop("project")
        return services.create_environment(project, data=kwargs, actor=FACTORY, source=SYSTEM)


class FlagFactory(DjangoModelFactory[Flag]):
    """A boolean flag, off in every environment."""

    class Meta:
        model = Flag

    project = SubFactory(ProjectFactory)
    key = Sequence(lambda n: f"flag-{n}")
    name = LazyAttribute(lambda f: f.key.replace("-", " ").title())

    @classmethod
    def _create(cls, model_class: Any, *args: Any, **kwargs: Any) -> Flag:
        project = kwargs.pop("project")
        return services.create_flag(
            project, data=kwargs, actor=FACTORY, source=SYSTEM, reason="factory"
        )


class FlagStateFactory(DjangoModelFactory[FlagState]):
    """The (already existing) state of a flag in an environment, with the given fields set.

    ``environment`` may be an Environment or a key of the flag's project (default development).
    Approval is bypassed: this sets up tests, it is not a change anyone makes.
    """

    class Meta:
        model = FlagState

    flag = SubFactory(FlagFactory)
    environment = "development"

    @classmethod
    def _create(cls, model_class: Any, *args: Any, **kwargs: Any) -> FlagState:
        flag: Flag = kwargs.pop("flag")
        env = kwargs.pop("environment")
        if not isinstance(env, Environment):
            env = Environment.objects.get(project_id=flag.project_id, key=env)
        state = services.get_state(flag, env)
        if not kwargs:
            return state
        edit = services.Edit(services.STATE, state, kwargs, state.version)
        services.submit(
            [edit], actor=FACTORY, source=SYSTEM, reason="factory",
            authority=services.Authority.APPROVED,
        )  # fmt: skip
        result: FlagState = edit.target
        return result


class SegmentFactory(DjangoModelFactory[Segment]):
    class Meta:
        model = Segment

    project = SubFactory(ProjectFactory)
    key = Sequence(lambda n: f"segment-{n}")
    name = LazyAttribute(lambda s: s.key.title())

    @classmethod
    def _create(cls, model_class: Any, *args: Any, **kwargs: Any) -> Segment:
        project = kwargs.pop("project")
        return services.create_segment(
            project, data=kwargs, actor=FACTORY, source=SYSTEM, reason="factory"
        )


def grant(
    user: User, project: Project, role: str, environments: list[Environment] | None = None
) -> RoleGrant:
    """Gives ``user`` a role (viewer, editor, release_manager, owner) in ``project``."""
    return roles.grant_role(user, project, role, environments)
