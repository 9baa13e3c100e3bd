"""Roles per project, stored as django-guardian object permissions; one check for every path.

A RoleGrant gives project-level permissions on the Project and environment-level permissions
on each Environment it covers (all of them, or the ones it is narrowed to). ``can`` is what
the admin, the API and the services ask; superusers may do everything.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Literal

from django.contrib.auth.models import AnonymousUser, User
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.db.models import Q, QuerySet
from guardian.core import ObjectPermissionChecker
from guardian.models import UserObjectPermission
from guardian.shortcuts import assign_perm, get_objects_for_user

from flags.history import stamp
from flags.models import (
    AuditFields,
    ChangeRequest,
    Environment,
    Flag,
    FlagState,
    Project,
    RoleGrant,
    Segment,
)

Role = RoleGrant.Role
Action = Literal[
    "view",
    "edit_flag",
    "archive_flag",
    "edit_segment",
    "edit_state",
    "propose",
    "kill",
    "approve",
    "manage",
]
UserLike = User | AnonymousUser

PROJECT_PERMS: dict[str, tuple[str, ...]] = {
    Role.VIEWER: ("view_project_content",),
    Role.EDITOR: ("view_project_content", "edit_project_flags", "edit_project_segments"),
    Role.RELEASE_MANAGER: (
        "view_project_content",
        "edit_project_flags",
        "edit_project_segments",
        "archive_project_flags",
    ),
    Role.OWNER: (
        "view_project_content",
        "edit_project_flags",
        "edit_project_segments",
        "archive_project_flags",
        "own_project",
    ),
}
ENVIRONMENT_PERMS: dict[str, tuple[str, ...]] = {
    Role.VIEWER: ("view_env_flags",),
    Role.EDITOR: ("view_env_flags", "edit_env_targeting"),
    Role.RELEASE_MANAGER: ("view_env_flags", "edit_env_targeting", "release_env"),
    Role.OWNER: ("view_env_flags", "edit_env_targeting", "release_env"),
}
ALL_PROJECT_PERMS = PROJECT_PERMS[Role.OWNER]
ALL_ENVIRONMENT_PERMS = ENVIRONMENT_PERMS[Role.OWNER]
_CHECKER_ATTR = "_flagsite_perm_checker"


def _checker(user: Any) -> ObjectPermissionChecker:
    """One guardian checker per user object: a request's checks share its cache."""
    checker: ObjectPermissionChecker | None = getattr(user, _CHECKER_ATTR, None)
    if checker is None:
        checker = ObjectPermissionChecker(user)
        setattr(user, _CHECKER_ATTR, checker)
    return checker


def forget_cached_permissions(user: Any) -> None:
    if hasattr(user, _CHECKER_ATTR):
        delattr(user, _CHECKER_ATTR)


def _has(user: Any, codename: str, obj: Project | Environment) -> bool:
    return bool(_checker(user).has_perm(codename, obj))


def environment_of(obj: object) -> Environment | None:
    if isinstance(obj, Environment):
        return obj
    if isinstance(obj, FlagState):
        return obj.environment
    if isinstance(obj, ChangeRequest) and obj.flag_state is not None:
        return obj.flag_state.environment
    return None


def project_of(obj: object) -> Project:
    if isinstance(obj, Project):
        return obj
    if isinstance(obj, Environment | Flag | Segment):
        return obj.project
    if isinstance(obj, ChangeRequest) and obj.project is not None:
        return obj.project
    env = environment_of(obj)
    if env is None:
        raise TypeError(f"no project for {type(obj).__name__}")
    return env.project


def can(user: UserLike | None, action: Action, obj: object) -> bool:
    """Whether ``user`` may do ``action`` on ``obj`` (a project, environment, flag, flag state,
    segment or change request). Environment-bound actions take the environment's narrowing
    into account; flag-state edits in production need the release permission, while proposing
    a change there (a change request) needs only the targeting permission."""
    if user is None or not user.is_authenticated or not user.is_active:
        return False
    if user.is_superuser:
        return True
    env = environment_of(obj)
    if action == "propose":
        return env is not None and (
            _has(user, "release_env", env) or _has(user, "edit_env_targeting", env)
        )
    if action in ("edit_state", "kill", "approve"):
        if env is None:
            return False
        if _has(user, "release_env", env):
            return True
        return not env.is_production and _has(user, "edit_env_targeting", env)
    if action == "view":
        if env is not None and not isinstance(obj, Environment):
            return _has(user, "view_env_flags", env)
        return _has(user, "view_project_content", project_of(obj))
    project = project_of(obj)
    codename = {
        "edit_flag": "edit_project_flags",
        "archive_flag": "archive_project_flags",
        "edit_segment": "edit_project_segments",
        "manage": "own_project",
    }[action]
    return _has(user, codename, project)


def require(user: UserLike | None, action: Action, obj: object) -> None:
    if not can(user, action, obj):
        raise PermissionDenied(f"You may not {action.replace('_', ' ')} {obj}.")


def visible_projects(user: UserLike) -> QuerySet[Project]:
    if user.is_superuser:
        return Project.objects.all()
    return get_objects_for_user(
        user, "flags.view_project_content", Project.objects.all(), accept_global_perms=False
    )


def visible_environments(user: UserLike) -> QuerySet[Environment]:
    if user.is_superuser:
        return Environment.objects.all()
    return get_objects_for_user(
        user, "flags.view_env_flags", Environment.objects.all(), accept_global_perms=False
    )


def projects_with(user: UserLike, codename: str) -> QuerySet[Project]:
    if user.is_superuser:
        return Project.objects.all()
    return get_objects_for_user(
        user, f"flags.{codename}", Project.objects.all(), accept_global_perms=False
    )


def has_any_role(user: UserLike) -> bool:
    return bool(user.is_active and (user.is_superuser or visible_projects(user).exists()))


def grant_role(
    user: User,
    project: Project,
    role: str,
    environments: Iterable[Environment] | None = None,
    *,
    reason: str = "granted by the system",
    source: str = AuditFields.Source.SYSTEM,
) -> RoleGrant:
    """Gives ``user`` one role in ``project`` (replacing any earlier one), unchecked.

    Only for bootstrapping, where nobody can be asked: a project's creator becomes its owner,
    the demo seed, test set-up. People's grants go through flags.grants (checks, reason).
    """
    with transaction.atomic():
        grant = RoleGrant.objects.select_for_update().filter(user=user, project=project).first()
        if grant is None:
            grant = RoleGrant(user=user, project=project)
        grant.role = role
        stamp(grant, user=None, source=source, reason=reason)
        grant.save()
        grant.environments.set(list(environments or []))
        sync_grant(grant)
    return grant


def sync_grant(grant: RoleGrant) -> None:
    """Rewrites the guardian permissions of the grant's user in the grant's project."""
    clear_permissions(grant.user, grant.project)
    for codename in PROJECT_PERMS[grant.role]:
        assign_perm(f"flags.{codename}", grant.user, grant.project)
    scoped = grant.environments.all()
    if not scoped.exists():
        scoped = grant.project.environments.all()
    for codename in ENVIRONMENT_PERMS[grant.role]:
        assign_perm(f"flags.{codename}", grant.user, scoped)  # type: ignore[arg-type]
    forget_cached_permissions(grant.user)


def clear_permissions(user: Any, project: Project) -> None:
    """Removes every role permission ``user`` holds on ``project`` and its environments."""
    UserObjectPermission.objects.filter(
        user=user,
        content_type=ContentType.objects.get_for_model(Project),
        object_pk=str(project.pk),
        permission__codename__in=ALL_PROJECT_PERMS,
    ).delete()
    UserObjectPermission.objects.filter(
        user=user,
        content_type=ContentType.objects.get_for_model(Environment),
        object_pk__in=[str(pk) for pk in project.environments.values_list("pk", flat=True)],
        permission__codename__in=ALL_ENVIRONMENT_PERMS,
    ).delete()
    forget_cached_permissions(user)


def held_permissions(user: Any, project: Project) -> set[tuple[str, str]]:
    """(codename, object) pairs of role permissions ``user`` holds in ``project``: what the
    guardian tables say, to compare with what the user's grant explains."""
    rows = UserObjectPermission.objects.filter(user=user).filter(
        Q(content_type=ContentType.objects.get_for_model(Project), object_pk=str(project.pk))
        | Q(
            content_type=ContentType.objects.get_for_model(Environment),
            object_pk__in=[str(pk) for pk in project.environments.values_list("pk", flat=True)],
        )
    )
    fields = ("permission__codename", "content_type__model", "object_pk")
    return {(codename, f"{model}:{pk}") for codename, model, pk in rows.values_list(*fields)}


def granted_permissions(grant: RoleGrant | None) -> set[tuple[str, str]]:
    """The permissions a grant explains, in ``held_permissions``' form (none without one)."""
    if grant is None:
        return set()
    out = {(c, f"project:{grant.project_id}") for c in PROJECT_PERMS[grant.role]}
    scoped = list(grant.environments.values_list("pk", flat=True)) or list(
        grant.project.environments.values_list("pk", flat=True)
    )
    out |= {(c, f"environment:{pk}") for c in ENVIRONMENT_PERMS[grant.role] for pk in scoped}
    return out


def sync_new_environment(environment: Environment) -> None:
    """A new environment inherits the project's un-narrowed grants."""
    for grant in RoleGrant.objects.filter(project_id=environment.project_id):
        if not grant.environments.exists():
            for codename in ENVIRONMENT_PERMS[grant.role]:
                assign_perm(f"flags.{codename}", grant.user, environment)
