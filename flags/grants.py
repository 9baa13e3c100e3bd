"""Granting, changing and revoking roles: the writes of RoleGrant that people make.

Each one checks that the actor owns the project (role "manage"), needs a reason, locks the
project's grants, saves the grant with its history record (who, when, what, from where, why)
and rewrites the grantee's guardian permissions in the same transaction, so the permissions
always say exactly what the grants say.

A grant's user and project never change. Moving access from one person to another is a revoke
and a new grant: editing the user of a grant in place would leave the old user's permissions
behind (they are rows of their own, keyed by user).

A grant's version is the number of history records it has (every write adds one): a caller
that says which version it saw (the API always does) gets VersionConflict if it moved on.
"""

from __future__ import annotations

from collections.abc import Iterable

from django.contrib.auth.models import User
from django.db import transaction

from flags import roles
from flags.errors import ChangeRejected, FieldError, VersionConflict
from flags.history import stamp
from flags.models import AuditFields, Environment, Project, RoleGrant

Role = RoleGrant.Role
ADMIN = AuditFields.Source.ADMIN


def grant(
    user: User,
    project: Project,
    role: str,
    environments: Iterable[Environment] = (),
    *,
    actor: roles.UserLike,
    reason: str,
    source: str = ADMIN,
) -> RoleGrant:
    """Gives ``user`` ``role`` in ``project``, optionally narrowed to ``environments``; a user
    who already has a role there gets this one instead (the same as ``change``)."""
    roles.require(actor, "manage", project)
    envs = list(environments)
    _validate(project, role, envs, reason)
    with transaction.atomic():
        _lock(project)
        existing = RoleGrant.objects.filter(user=user, project=project).first()
        if existing is not None:
            return _change_locked(existing, role, envs, actor, reason, source)
        created = RoleGrant(user=user, project=project, role=role)
        _save(created, envs, actor, reason, source)
    return created


def version_of(grant: RoleGrant) -> int:
    return int(RoleGrant.history.filter(id=grant.pk).count())


def _check_version(locked: RoleGrant, expected_version: int | None) -> None:
    if expected_version is not None and version_of(locked) != expected_version:
        raise VersionConflict(version_of(locked), expected_version)


def change(
    grant: RoleGrant,
    *,
    role: str,
    environments: Iterable[Environment] = (),
    actor: roles.UserLike,
    reason: str,
    source: str = ADMIN,
    expected_version: int | None = None,
) -> RoleGrant:
    """Changes the role or the environments of an existing grant (never its user or project)."""
    envs = list(environments)
    with transaction.atomic():
        locked = _locked_grant(grant)
        roles.require(actor, "manage", locked.project)
        _check_version(locked, expected_version)
        _validate(locked.project, role, envs, reason)
        return _change_locked(locked, role, envs, actor, reason, source)


def revoke(
    grant: RoleGrant,
    *,
    actor: roles.UserLike,
    reason: str,
    source: str = ADMIN,
    expected_version: int | None = None,
) -> None:
    """Removes the grant and every permission it gave; the history keeps who, when and why."""
    with transaction.atomic():
        locked = _locked_grant(grant)
        roles.require(actor, "manage", locked.project)
        _check_version(locked, expected_version)
        _require_reason(reason)
        if locked.role == Role.OWNER:
            _keep_an_owner(locked, "Revoking")
        stamp(locked, user=_user(actor), source=source, reason=reason)
        user, project = locked.user, locked.project
        locked.delete()
        roles.clear_permissions(user, project)


def _locked_grant(grant: RoleGrant) -> RoleGrant:
    """The saved grant, after locking its project's grants; refuses a user or project that was
    changed on the instance (the admin never offers it; this keeps any other caller honest)."""
    saved = RoleGrant.objects.select_related("user", "project").filter(pk=grant.pk).first()
    if saved is None:
        raise ChangeRejected([FieldError("user", "This role grant no longer exists.")])
    _lock(saved.project)
    saved = RoleGrant.objects.select_related("user", "project").get(pk=grant.pk)
    for field, now, was in (
        ("user", grant.user_id, saved.user_id),
        ("project", grant.project_id, saved.project_id),
    ):
        if now != was:
            raise ChangeRejected(
                [
                    FieldError(
                        field,
                        f"A role grant's {field} cannot change: revoke this grant and grant "
                        f"the role to the other {field} instead.",
                    )
                ]
            )
    return saved


def _change_locked(
    locked: RoleGrant,
    role: str,
    envs: list[Environment],
    actor: roles.UserLike,
    reason: str,
    source: str,
) -> RoleGrant:
    if locked.role == Role.OWNER and role != Role.OWNER:
        _keep_an_owner(locked, "Demoting")
    locked.role = role
    _save(locked, envs, actor, reason, source)
    return locked


def _save(
    grant: RoleGrant,
    envs: list[Environment],
    actor: roles.UserLike,
    reason: str,
    source: str,
) -> None:
    scope = ", ".join(e.key for e in envs) if envs else "every environment"
    # The history row records the role; the scope (a many-to-many) goes into the reason so the
    # audit says what the grant covered.
    stamp(grant, user=_user(actor), source=source, reason=f"{reason} (environments: {scope})")
    grant.save()
    grant.environments.set(envs)
    roles.sync_grant(grant)


def _lock(project: Project) -> None:
    # One writer of a project's grants at a time (every grant write locks the project row
    # first): the "last owner" check must see every grant, and two grants for one new user
    # must not race to create it.
    list(Project.objects.select_for_update().filter(pk=project.pk).values_list("pk"))


def _keep_an_owner(grant: RoleGrant, doing: str) -> None:
    others = RoleGrant.objects.filter(project_id=grant.project_id, role=Role.OWNER).exclude(
        pk=grant.pk
    )
    if not others.exists():
        raise ChangeRejected(
            [
                FieldError(
                    "role",
                    f"{doing} {grant.user} would leave {grant.project.key} without an owner: "
                    "make someone else owner first.",
                )
            ]
        )


def _validate(project: Project, role: str, envs: list[Environment], reason: str) -> None:
    errors = []
    if role not in Role.values:
        errors.append(FieldError("role", f"Unknown role {role!r}: use one of {Role.values}."))
    if any(env.project_id != project.pk for env in envs):
        errors.append(FieldError("environments", f"Pick environments of {project.key} only."))
    if not reason.strip():
        errors.append(_REASON)
    if errors:
        raise ChangeRejected(errors)


_REASON = FieldError("reason", "Give a reason: who gets access, and why, is kept in the audit.")


def _require_reason(reason: str) -> None:
    if not reason.strip():
        raise ChangeRejected([_REASON])


def _user(actor: roles.UserLike) -> User | None:
    return actor if isinstance(actor, User) else None
