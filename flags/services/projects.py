"""Projects and environments: settings owned by the project's owners.

Their settings change how changes are reviewed, not how flags evaluate, so they are written
here directly; a new environment starts with every flag off and its own empty ruleset.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.core.exceptions import PermissionDenied
from django.db import transaction

from flags import roles
from flags.errors import ChangeRejected, FieldError
from flags.history import stamp
from flags.models import Environment, Flag, FlagState, Project, Ruleset
from flags.rulesets import default_off_variant, rebuild_ruleset
from flags.services.base import (
    Actor,
    ActorLike,
    check_version,
    full_clean,
    relative,
    require,
    start,
    unknown_fields,
)
from flags.services.objects import IMMUTABLE_KEY

PROJECT_FIELDS = ("name", "apply_on_approval")
ENVIRONMENT_FIELDS = ("name", "sort_order", "is_production", "requires_approval", "cors_origins")
DEFAULT_ENVIRONMENTS = (
    {"key": "development", "name": "Development", "sort_order": 0},
    {"key": "staging", "name": "Staging", "sort_order": 1},
    {"key": "production", "name": "Production", "sort_order": 2, "is_production": True},
)


def _write_settings(
    locked: Project | Environment, changes: Mapping[str, Any], who: Actor, source: str, reason: str
) -> None:
    for name, value in changes.items():
        setattr(locked, name, value)
    locked.version += 1
    full_clean(locked)
    stamp(locked, user=who.user, source=source, reason=reason)
    locked.save()


def create_project(
    *, key: str, name: str, actor: ActorLike, source: str, reason: str = ""
) -> Project:
    """Creates a project with the default environments; its creator becomes its owner."""
    who, reason = start(actor, source, reason)
    if who.user is not None and not who.user.has_perm("flags.add_project"):
        raise PermissionDenied("You may not create projects.")
    with transaction.atomic():
        project = Project(key=key, name=name)
        full_clean(project)
        stamp(project, user=who.user, source=source, reason=reason)
        project.save()
        for spec in DEFAULT_ENVIRONMENTS:
            _add_environment(project, dict(spec), who, source, reason)
        if who.user is not None and not who.user.is_superuser:
            roles.grant_role(who.user, project, roles.Role.OWNER)
    return project


def update_project(
    project: Project,
    *,
    changes: Mapping[str, Any],
    expected_version: object,
    actor: ActorLike,
    source: str,
    reason: str = "",
) -> Project:
    who, reason = start(actor, source, reason)
    require(who, "manage", project)
    unknown_fields(changes, PROJECT_FIELDS)
    with transaction.atomic():
        locked = Project.objects.select_for_update().get(pk=project.pk)
        check_version(locked, expected_version)
        _write_settings(locked, changes, who, source, reason)
    return locked


def _add_environment(
    project: Project, data: dict[str, Any], who: Actor, source: str, reason: str
) -> Environment:
    env = Environment(project=project, **data)
    full_clean(env)
    stamp(env, user=who.user, source=source, reason=reason)
    env.save()
    for flag in Flag.objects.filter(project=project):
        off = default_off_variant(flag)
        state = FlagState(
            flag=flag, environment=env, off_variant=off, default_serve={"variant": off}
        )
        stamp(state, user=who.user, source=source, reason=reason)
        state.save()
    Ruleset.objects.create(environment=env)
    roles.sync_new_environment(env)
    result = rebuild_ruleset(env)
    if result.errors:
        raise ChangeRejected(
            [FieldError(relative(e.path, None), e.message, e.code) for e in result.errors]
        )
    return env


def create_environment(
    project: Project, *, data: Mapping[str, Any], actor: ActorLike, source: str, reason: str = ""
) -> Environment:
    who, reason = start(actor, source, reason)
    require(who, "manage", project)
    unknown_fields(data, ("key", *ENVIRONMENT_FIELDS))
    with transaction.atomic():
        return _add_environment(project, dict(data), who, source, reason)


def update_environment(
    environment: Environment,
    *,
    changes: Mapping[str, Any],
    expected_version: object,
    actor: ActorLike,
    source: str,
    reason: str = "",
) -> Environment:
    """Changes an environment's settings; its key is immutable (SDKs and API keys use it)."""
    who, reason = start(actor, source, reason)
    require(who, "manage", environment)
    if "key" in changes and changes["key"] != environment.key:
        raise ChangeRejected([IMMUTABLE_KEY])
    changes = {k: v for k, v in changes.items() if k != "key"}
    unknown_fields(changes, ENVIRONMENT_FIELDS)
    with transaction.atomic():
        locked = Environment.objects.select_for_update().get(pk=environment.pk)
        check_version(locked, expected_version)
        if locked.is_production and not reason.strip():
            raise ChangeRejected(
                [
                    FieldError(
                        "reason", "Give a reason: this is a production environment.", "required"
                    )
                ]
            )
        _write_settings(locked, changes, who, source, reason)
    return locked
