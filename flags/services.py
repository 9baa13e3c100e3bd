"""Every write to flags, flag states, segments, environments and change requests.

Each function runs one transaction: lock, check the role and the version the caller edited,
apply, check model rules, stamp history (who, source, reason), rebuild every affected
environment's ruleset with the engine's validator (an invalid result rolls everything back)
and publish the new versions on commit. Callers (admin, API, automation) catch
ChangeRejected, VersionConflict, ApprovalRequired and PermissionDenied.

Error paths in ChangeRejected are relative to the changed object (see errors.FieldError).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from django.contrib.auth.models import AnonymousUser, User
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import models, transaction
from django.utils import timezone

from flags import roles
from flags.errors import ApprovalRequired, ChangeRejected, FieldError, VersionConflict
from flags.history import stamp
from flags.models import (
    AuditFields,
    ChangeRequest,
    Environment,
    Flag,
    FlagState,
    Project,
    Ruleset,
    Segment,
)
from flags.rulesets import default_off_variant, rebuild_ruleset

__all__ = [
    "Actor",
    "ApprovalRequired",
    "ChangeRejected",
    "FieldError",
    "PermissionDenied",
    "Source",
    "VersionConflict",
]

Source = AuditFields.Source
STATE_FIELDS = ("enabled", "off_variant", "rules", "default_serve", "prerequisites")
FLAG_FIELDS = (
    "name", "description", "kind", "value_type", "variants", "salt", "client_visible",
    "owner", "tags", "expires_at",
)  # fmt: skip
SEGMENT_FIELDS = ("name", "description", "key_attribute", "included", "excluded", "rules")
ENVIRONMENT_FIELDS = ("name", "sort_order", "is_production", "requires_approval")
IMMUTABLE_KEY = FieldError("key", "The key cannot change once created.", "immutable")
DEFAULT_ENVIRONMENTS = (
    {"key": "development", "name": "Development", "sort_order": 0},
    {"key": "staging", "name": "Staging", "sort_order": 1},
    {"key": "production", "name": "Production", "sort_order": 2, "is_production": True},
)


@dataclass(frozen=True, slots=True)
class Actor:
    """Who makes a change: a user, or automation (no user, e.g. the rollout engine)."""

    user: User | None = None
    name: str = ""

    @classmethod
    def automation(cls, name: str) -> Actor:
        return cls(user=None, name=name)

    @property
    def is_automation(self) -> bool:
        return self.user is None

    def __str__(self) -> str:
        return str(self.user) if self.user is not None else f"automation:{self.name}"


ActorLike = Actor | User | AnonymousUser


def as_actor(actor: ActorLike) -> Actor:
    if isinstance(actor, Actor):
        return actor
    if isinstance(actor, AnonymousUser) or not actor.is_authenticated:
        raise PermissionDenied("Sign in to make changes.")
    return Actor(user=actor)


def _check_source(actor: Actor, source: str) -> None:
    if source not in Source.values:
        raise ValueError(f"unknown source {source!r}")
    if actor.is_automation and source not in (Source.AUTOMATION, Source.SYSTEM):
        raise PermissionDenied("Only automation may act without a user.")


def _require(actor: Actor, action: roles.Action, obj: object) -> None:
    # Automation is server-side code acting on its own authority (rollout policies).
    if actor.user is not None:
        roles.require(actor.user, action, obj)


def _unknown_fields(changes: Mapping[str, Any], allowed: Iterable[str]) -> None:
    unknown = sorted(set(changes) - set(allowed))
    if unknown:
        raise ChangeRejected(
            [
                FieldError(name, "This field cannot be changed here.", "not_editable")
                for name in unknown
            ]
        )


def _check_keyed_edit(
    who: Actor,
    source: str,
    action: roles.Action,
    obj: Environment | Flag | Segment,
    changes: Mapping[str, Any],
    allowed: Iterable[str],
) -> None:
    """The gate every edit of a keyed object passes: source, role, immutable key, known fields."""
    _check_source(who, source)
    _require(who, action, obj)
    if "key" in changes and changes["key"] != obj.key:
        raise ChangeRejected([IMMUTABLE_KEY])
    _unknown_fields({k: v for k, v in changes.items() if k != "key"}, allowed)


def _check_version(locked: Any, expected_version: int | None) -> None:
    """A stale edit is refused; None (a revert chosen from history) skips the check."""
    if expected_version is not None and locked.version != expected_version:
        raise VersionConflict(locked.version, expected_version)


def _write_settings(
    locked: Project | Environment, changes: Mapping[str, Any], who: Actor, source: str, reason: str
) -> None:
    """Applies validated field changes to a locked project or environment as a new version."""
    for name, value in changes.items():
        setattr(locked, name, value)
    locked.version += 1
    _full_clean(locked)
    stamp(locked, user=who.user, source=source, reason=reason)
    locked.save()


def _full_clean(obj: models.Model, exclude: Iterable[str] = ()) -> None:
    try:
        obj.full_clean(exclude=list(exclude))
    except ValidationError as exc:
        raise ChangeRejected(
            [
                FieldError("" if field == "__all__" else field, message, "invalid")
                for field, messages in exc.message_dict.items()
                for message in messages
            ]
        ) from exc


def _relative(path: str, prefix: str | None) -> str:
    if prefix is None:
        return path
    if path == prefix:
        return ""
    if path.startswith(prefix + "."):
        return path[len(prefix) + 1 :]
    if path.startswith(prefix + "["):
        return path[len(prefix) :]
    return path


def _rebuild(environments: Iterable[Environment], reason: str, subject: str | None) -> list[int]:
    """Rebuilds each environment's ruleset; raises ChangeRejected if any would be invalid or
    if a production ruleset changes without a reason. ``subject`` is the changed object's
    document path (``flags.<key>``) to which error paths are made relative."""
    errors: dict[tuple[str, str], FieldError] = {}
    production_changed = False
    versions: list[int] = []
    for env in environments:
        result = rebuild_ruleset(env)
        for err in result.errors:
            path = _relative(err.path, subject)
            errors.setdefault((path, err.message), FieldError(path, err.message, err.code))
        production_changed |= result.changed and env.is_production
        versions.append(result.version)
    if errors:
        raise ChangeRejected(list(errors.values()))
    if production_changed and not reason.strip():
        raise ChangeRejected(
            [FieldError("reason", "Give a reason: this change affects production.", "required")]
        )
    return versions


def _environments(project_id: int) -> list[Environment]:
    return list(Environment.objects.filter(project_id=project_id).select_related("project"))


# --- Projects and environments ---------------------------------------------------------------


def create_project(
    *, key: str, name: str, actor: ActorLike, source: str, reason: str = ""
) -> Project:
    """Creates a project with the default environments; its creator becomes its owner."""
    who = as_actor(actor)
    _check_source(who, source)
    if who.user is not None and not who.user.has_perm("flags.add_project"):
        raise PermissionDenied("You may not create projects.")
    with transaction.atomic():
        project = Project(key=key, name=name)
        _full_clean(project)
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
    expected_version: int,
    actor: ActorLike,
    source: str,
    reason: str = "",
) -> Project:
    who = as_actor(actor)
    _check_source(who, source)
    _require(who, "manage", project)
    _unknown_fields(changes, ("name",))
    with transaction.atomic():
        locked = Project.objects.select_for_update().get(pk=project.pk)
        _check_version(locked, expected_version)
        _write_settings(locked, changes, who, source, reason)
    return locked


def _add_environment(
    project: Project, data: dict[str, Any], who: Actor, source: str, reason: str
) -> Environment:
    env = Environment(project=project, **data)
    _full_clean(env)
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
    _rebuild([env], reason or "new environment", None)
    return env


def create_environment(
    project: Project, *, data: Mapping[str, Any], actor: ActorLike, source: str, reason: str = ""
) -> Environment:
    who = as_actor(actor)
    _check_source(who, source)
    _require(who, "manage", project)
    _unknown_fields(data, ("key", *ENVIRONMENT_FIELDS))
    with transaction.atomic():
        return _add_environment(project, dict(data), who, source, reason)


def update_environment(
    environment: Environment,
    *,
    changes: Mapping[str, Any],
    expected_version: int,
    actor: ActorLike,
    source: str,
    reason: str = "",
) -> Environment:
    """Changes an environment's settings; its key is immutable (SDKs and API keys use it)."""
    who = as_actor(actor)
    _check_keyed_edit(who, source, "manage", environment, changes, ENVIRONMENT_FIELDS)
    with transaction.atomic():
        locked = Environment.objects.select_for_update().get(pk=environment.pk)
        _check_version(locked, expected_version)
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


# --- Flags -----------------------------------------------------------------------------------


def create_flag(
    project: Project, *, data: Mapping[str, Any], actor: ActorLike, source: str, reason: str = ""
) -> Flag:
    """Creates a flag (``data``: key, name and any of FLAG_FIELDS), off in every environment."""
    who = as_actor(actor)
    _check_source(who, source)
    _require(who, "edit_flag", project)
    _unknown_fields(data, ("key", *FLAG_FIELDS))
    values = dict(data)
    if not values.get("variants") and values.get("value_type", "boolean") == "boolean":
        values["variants"] = {"on": True, "off": False}
    with transaction.atomic():
        flag = Flag(project=project, **values)
        _full_clean(flag)
        stamp(flag, user=who.user, source=source, reason=reason)
        flag.save()
        off = default_off_variant(flag)
        envs = _environments(project.pk)
        for env in envs:
            state = FlagState(
                flag=flag, environment=env, off_variant=off, default_serve={"variant": off}
            )
            state.updated_by = who.user
            stamp(state, user=who.user, source=source, reason=reason)
            state.save()
        # A new flag serves its off variant everywhere, so production needs no reason yet.
        _rebuild(envs, reason or "new flag, off", f"flags.{flag.key}")
    return flag


def update_flag(
    flag: Flag,
    *,
    changes: Mapping[str, Any],
    expected_version: int,
    actor: ActorLike,
    source: str,
    reason: str = "",
) -> Flag:
    """Edits a flag's definition. The key is immutable; archive with archive_flag."""
    who = as_actor(actor)
    _check_keyed_edit(who, source, "edit_flag", flag, changes, FLAG_FIELDS)
    with transaction.atomic():
        locked = Flag.objects.select_for_update().select_related("project").get(pk=flag.pk)
        _check_version(locked, expected_version)
        return _write_flag(locked, changes, who, source, reason)


def _write_flag(
    locked: Flag, changes: Mapping[str, Any], who: Actor, source: str, reason: str, note: str = ""
) -> Flag:
    for name, value in changes.items():
        setattr(locked, name, value)
    locked.version += 1
    _full_clean(locked)
    # The note ("revert to version 3") is recorded, but never stands in for the reason
    # that a production change needs.
    stamp(
        locked, user=who.user, source=source, reason=f"{reason} {note}".strip() if note else reason
    )
    locked.save()
    _rebuild(_environments(locked.project_id), reason, f"flags.{locked.key}")
    return locked


def flag_snapshot(flag: Any) -> dict[str, Any]:
    """The definition fields (FLAG_FIELDS) of a flag or one of its historical records."""
    values = {name: getattr(flag, name) for name in FLAG_FIELDS if name != "owner"}
    # A historical record's owner may be a user deleted since: restore no owner then.
    values["owner"] = User.objects.filter(pk=flag.owner_id).first() if flag.owner_id else None
    return values


def _historical(model: Any, obj: models.Model, history_id: int, what: str) -> Any:
    try:
        record = model.history.get(history_id=history_id, id=obj.pk)
    except model.history.model.DoesNotExist as exc:
        raise ChangeRejected(
            [FieldError("history_id", f"No such version of this {what}.", "not_found")]
        ) from exc
    if record.history_type == "-":
        raise ChangeRejected([FieldError("history_id", "That record is a deletion.", "not_found")])
    return record


def flag_revert_changes(flag: Flag, history_id: int) -> tuple[dict[str, Any], int]:
    """The definition of an earlier version of ``flag`` and that version's number."""
    record = _historical(Flag, flag, history_id, "flag")
    return flag_snapshot(record), int(record.version)


def revert_flag(
    flag: Flag,
    history_id: int,
    *,
    actor: ActorLike,
    source: str,
    reason: str = "",
    expected_version: int | None = None,
) -> Flag:
    """Restores the definition (FLAG_FIELDS) of an earlier version as a new version,
    validated and permission-checked like update_flag. Archiving is not part of it."""
    who = as_actor(actor)
    _check_source(who, source)
    _require(who, "edit_flag", flag)
    changes, old_version = flag_revert_changes(flag, history_id)
    with transaction.atomic():
        locked = Flag.objects.select_for_update().select_related("project").get(pk=flag.pk)
        _check_version(locked, expected_version)
        return _write_flag(
            locked, changes, who, source, reason, f"(revert to version {old_version})"
        )


def archive_flag(
    flag: Flag, *, actor: ActorLike, source: str, reason: str = "", archived: bool = True
) -> Flag:
    """Archives (or, with archived=False, restores) a flag: it leaves every ruleset."""
    who = as_actor(actor)
    _check_source(who, source)
    _require(who, "archive_flag", flag)
    with transaction.atomic():
        locked = Flag.objects.select_for_update().get(pk=flag.pk)
        if locked.archived == archived:
            return locked
        locked.archived = archived
        locked.archived_at = timezone.now() if archived else None
        locked.version += 1
        stamp(locked, user=who.user, source=source, reason=reason)
        locked.save()
        _rebuild(_environments(locked.project_id), reason, f"flags.{locked.key}")
    return locked


# --- Flag states -----------------------------------------------------------------------------


def state_snapshot(state: Any) -> dict[str, Any]:
    """The editable fields of a flag state or one of its historical records."""
    return {name: getattr(state, name) for name in STATE_FIELDS}


def _lock_state(state: FlagState | int) -> FlagState:
    pk = state if isinstance(state, int) else state.pk
    return (
        FlagState.objects.select_for_update(of=("self",))
        .select_related("flag", "environment__project")
        .get(pk=pk)
    )


def _write_state(
    locked: FlagState,
    changes: Mapping[str, Any],
    who: Actor,
    source: str,
    reason: str,
    note: str = "",
) -> FlagState:
    _unknown_fields(changes, STATE_FIELDS)
    for name, value in changes.items():
        setattr(locked, name, value)
    locked.version += 1
    locked.updated_by = who.user
    _full_clean(locked, exclude=("flag", "environment", "updated_by"))
    recorded = f"{reason} {note}".strip() if note else reason
    stamp(locked, user=who.user, source=source, reason=recorded)
    locked.save()
    _rebuild([locked.environment], reason, f"flags.{locked.flag.key}")
    return locked


def update_flag_state(
    state: FlagState,
    *,
    changes: Mapping[str, Any],
    expected_version: int,
    actor: ActorLike,
    source: str,
    reason: str = "",
) -> FlagState:
    """Changes a flag's targeting in one environment (any of STATE_FIELDS).

    Raises VersionConflict if the state is no longer at ``expected_version`` and
    ApprovalRequired where the environment needs a second person (use request_change).
    """
    who = as_actor(actor)
    _check_source(who, source)
    with transaction.atomic():
        locked = _lock_state(state)
        _require(who, "edit_state", locked)
        if locked.environment.requires_approval:
            raise ApprovalRequired(locked.environment.key)
        _check_version(locked, expected_version)
        return _write_state(locked, changes, who, source, reason)


def get_state(flag: Flag, environment: Environment) -> FlagState:
    return FlagState.objects.select_related("flag", "environment__project").get(
        flag=flag, environment=environment
    )


def kill_flag(
    target: FlagState | Flag,
    environment: Environment | None = None,
    *,
    actor: ActorLike,
    source: str,
    reason: str = "",
) -> FlagState:
    """Turns a flag off in one environment at once: no version check and no approval step,
    since it is the emergency path. Killing a flag that is already off changes nothing."""
    who = as_actor(actor)
    _check_source(who, source)
    if isinstance(target, Flag):
        if environment is None:
            raise TypeError("kill_flag(flag, environment, ...) needs the environment")
        target = get_state(target, environment)
    with transaction.atomic():
        locked = _lock_state(target)
        _require(who, "kill", locked)
        if not locked.enabled:
            return locked
        return _write_state(locked, {"enabled": False}, who, source, reason, "(kill switch)")


def revert_changes(state: FlagState, history_id: int) -> tuple[dict[str, Any], int]:
    """The field values of an earlier version of ``state`` and that version's number."""
    try:
        record = FlagState.history.get(history_id=history_id, id=state.pk)
    except FlagState.history.model.DoesNotExist as exc:
        raise ChangeRejected(
            [FieldError("history_id", "No such version of this flag state.", "not_found")]
        ) from exc
    return state_snapshot(record), int(record.version)


def revert_flag_state(
    state: FlagState,
    history_id: int,
    *,
    actor: ActorLike,
    source: str,
    reason: str = "",
    expected_version: int | None = None,
) -> FlagState:
    """Restores the targeting of an earlier version as a new version, validated and
    permission-checked like any edit (ApprovalRequired where approval is needed)."""
    who = as_actor(actor)
    _check_source(who, source)
    changes, old_version = revert_changes(state, history_id)
    with transaction.atomic():
        locked = _lock_state(state)
        _require(who, "edit_state", locked)
        if locked.environment.requires_approval:
            raise ApprovalRequired(locked.environment.key)
        _check_version(locked, expected_version)
        return _write_state(
            locked, changes, who, source, reason, f"(revert to version {old_version})"
        )


# --- Segments --------------------------------------------------------------------------------


def create_segment(
    project: Project, *, data: Mapping[str, Any], actor: ActorLike, source: str, reason: str = ""
) -> Segment:
    who = as_actor(actor)
    _check_source(who, source)
    _require(who, "edit_segment", project)
    _unknown_fields(data, ("key", *SEGMENT_FIELDS))
    with transaction.atomic():
        segment = Segment(project=project, **data)
        _full_clean(segment)
        stamp(segment, user=who.user, source=source, reason=reason)
        segment.save()
        _rebuild(_environments(project.pk), reason or "new segment", f"segments.{segment.key}")
    return segment


def update_segment(
    segment: Segment,
    *,
    changes: Mapping[str, Any],
    expected_version: int,
    actor: ActorLike,
    source: str,
    reason: str = "",
) -> Segment:
    who = as_actor(actor)
    _check_keyed_edit(who, source, "edit_segment", segment, changes, SEGMENT_FIELDS)
    with transaction.atomic():
        locked = Segment.objects.select_for_update().get(pk=segment.pk)
        _check_version(locked, expected_version)
        return _write_segment(locked, changes, who, source, reason)


def _write_segment(
    locked: Segment,
    changes: Mapping[str, Any],
    who: Actor,
    source: str,
    reason: str,
    note: str = "",
) -> Segment:
    for name, value in changes.items():
        setattr(locked, name, value)
    locked.version += 1
    _full_clean(locked)
    stamp(
        locked, user=who.user, source=source, reason=f"{reason} {note}".strip() if note else reason
    )
    locked.save()
    _rebuild(_environments(locked.project_id), reason, f"segments.{locked.key}")
    return locked


def segment_snapshot(segment: Any) -> dict[str, Any]:
    """The editable fields (SEGMENT_FIELDS) of a segment or one of its historical records."""
    return {name: getattr(segment, name) for name in SEGMENT_FIELDS}


def segment_revert_changes(segment: Segment, history_id: int) -> tuple[dict[str, Any], int]:
    record = _historical(Segment, segment, history_id, "segment")
    return segment_snapshot(record), int(record.version)


def revert_segment(
    segment: Segment,
    history_id: int,
    *,
    actor: ActorLike,
    source: str,
    reason: str = "",
    expected_version: int | None = None,
) -> Segment:
    """Restores an earlier version of a segment as a new version, validated and
    permission-checked like update_segment."""
    who = as_actor(actor)
    _check_source(who, source)
    _require(who, "edit_segment", segment)
    changes, old_version = segment_revert_changes(segment, history_id)
    with transaction.atomic():
        locked = Segment.objects.select_for_update().get(pk=segment.pk)
        _check_version(locked, expected_version)
        return _write_segment(
            locked, changes, who, source, reason, f"(revert to version {old_version})"
        )


def delete_segment(segment: Segment, *, actor: ActorLike, source: str, reason: str = "") -> None:
    """Deletes a segment no flag refers to (the rebuild refuses otherwise)."""
    who = as_actor(actor)
    _check_source(who, source)
    _require(who, "edit_segment", segment)
    with transaction.atomic():
        locked = Segment.objects.select_for_update().get(pk=segment.pk)
        stamp(locked, user=who.user, source=source, reason=reason)
        project_id = locked.project_id
        locked.delete()
        _rebuild(_environments(project_id), reason, None)


# --- Change requests (environments that require approval) ----------------------------------


class _DryRunError(Exception):
    pass


def request_change(
    state: FlagState,
    *,
    changes: Mapping[str, Any],
    expected_version: int,
    actor: ActorLike,
    source: str,
    reason: str = "",
) -> ChangeRequest:
    """Proposes a flag-state change for approval. It is validated now (and again on apply)."""
    who = as_actor(actor)
    _check_source(who, source)
    with transaction.atomic():
        locked = _lock_state(state)
        _require(who, "edit_state", locked)
        _check_version(locked, expected_version)
        try:
            with transaction.atomic():
                _write_state(_lock_state(locked.pk), changes, who, source, reason)
                raise _DryRunError
        except _DryRunError:
            pass
        request = ChangeRequest(
            flag_state=locked,
            changes=dict(changes),
            base_version=locked.version,
            reason=reason,
            source=source,
            author=who.user,
        )
        stamp(request, user=who.user, source=source, reason=reason)
        request.save()
    return request


def _lock_request(request: ChangeRequest) -> ChangeRequest:
    return (
        ChangeRequest.objects.select_for_update(of=("self",))
        .select_related("flag_state__environment__project", "flag_state__flag")
        .get(pk=request.pk)
    )


def _expect_status(request: ChangeRequest, *statuses: str) -> None:
    if request.status not in statuses:
        raise ChangeRejected(
            [
                FieldError(
                    "status", f"This change request is {request.get_status_display()}.", "status"
                )
            ]
        )


def approve_change(
    request: ChangeRequest, *, actor: ActorLike, source: str, reason: str = ""
) -> ChangeRequest:
    """Approves a pending change; only a person other than its author may."""
    who = as_actor(actor)
    _check_source(who, source)
    if who.user is None:
        raise PermissionDenied("Approval needs a person.")
    with transaction.atomic():
        locked = _lock_request(request)
        _require(who, "approve", locked)
        if locked.author_id == who.user.pk:
            raise PermissionDenied("You cannot approve your own change request.")
        _expect_status(locked, ChangeRequest.Status.PENDING)
        locked.status = ChangeRequest.Status.APPROVED
        locked.reviewer = who.user
        locked.reviewed_at = timezone.now()
        locked.review_comment = reason
        stamp(locked, user=who.user, source=source, reason=reason or "approved")
        locked.save()
    return locked


def reject_change(
    request: ChangeRequest, *, actor: ActorLike, source: str, reason: str = ""
) -> ChangeRequest:
    """Rejects a pending or approved change (its author may withdraw it the same way)."""
    who = as_actor(actor)
    _check_source(who, source)
    with transaction.atomic():
        locked = _lock_request(request)
        is_author = who.user is not None and locked.author_id == who.user.pk
        if not is_author:
            _require(who, "approve", locked)
        _expect_status(locked, ChangeRequest.Status.PENDING, ChangeRequest.Status.APPROVED)
        locked.status = ChangeRequest.Status.REJECTED
        locked.reviewer = who.user
        locked.reviewed_at = timezone.now()
        locked.review_comment = reason
        stamp(locked, user=who.user, source=source, reason=reason or "rejected")
        locked.save()
    return locked


def apply_change(
    request: ChangeRequest, *, actor: ActorLike, source: str, reason: str = ""
) -> FlagState:
    """Applies an approved change. If the flag state moved on since the request was made, the
    request becomes stale and VersionConflict is raised; otherwise it is validated again."""
    who = as_actor(actor)
    _check_source(who, source)
    stale_version: int | None = None
    with transaction.atomic():
        locked = _lock_request(request)
        state = _lock_state(locked.flag_state_id)
        _require(who, "edit_state", state)
        _expect_status(locked, ChangeRequest.Status.APPROVED)
        if state.version != locked.base_version:
            locked.status = ChangeRequest.Status.STALE
            stamp(locked, user=who.user, source=source, reason="stale")
            locked.save()
            stale_version = state.version
        else:
            reviewer = locked.reviewer or "?"
            note = f"(change request #{locked.pk}, approved by {reviewer})"
            _write_state(state, locked.changes, who, source, locked.reason, note)
            locked.status = ChangeRequest.Status.APPLIED
            locked.applied_by = who.user
            locked.applied_at = timezone.now()
            stamp(locked, user=who.user, source=source, reason=reason or "applied")
            locked.save()
    if stale_version is not None:
        raise VersionConflict(stale_version, request.base_version)
    return state
