"""The one write pipeline for every change that can alter evaluation.

A change (a flag definition, a flag state, a segment, an archive, a revert, a kill, a rollout
step, or several at once) goes through ``run``:

1. every change checks its own object rule and writes its rows (locked, version-checked);
2. the candidate ruleset of every environment of the project is built and validated;
3. each is compared with the current one (``effects.changed_flags``);
4. each changed environment is authorized by effect: the actor's permission there, its
   approval rule and its reason requirement, whatever object was edited;
5. the rulesets and a history record on every affected flag state are written in the same
   transaction ("changed by segment free-us-uk edit");
6. the new versions are published on commit.

A dry run stops after step 4 and rolls back; a change that needs approval is rolled back and
stored as a change request instead. Nothing is ever half written.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from django.core.exceptions import PermissionDenied
from django.db import models, transaction

from flags import roles
from flags.errors import ApprovalRequired, ChangeRejected, FieldError
from flags.history import stamp
from flags.models import Environment, FlagState, Project
from flags.rulesets import build_ruleset_document, lock_rulesets, store_ruleset, validate_document
from flags.services.base import Actor, relative
from flags.services.effects import changed_flags


class Change(Protocol):
    """One part of a write. ``apply`` locks, checks the version and saves its rows."""

    project_id: int

    @property
    def label(self) -> str:
        """What people read in history: ``segment free-us-uk edit``."""

    @property
    def subject(self) -> str | None:
        """The document path (``flags.<key>``) engine errors are made relative to."""

    def authorize(self, who: Actor) -> None:
        """The object rule: may ``who`` edit this kind of object at all (PermissionDenied)."""

    def apply(self, who: Actor, source: str, reason: str) -> list[models.Model]:
        """Writes the change; returns the rows it saved."""

    def payload(self) -> dict[str, Any]:
        """JSON that ``changes.load`` turns back into this change (for change requests)."""

    def declared_environments(self) -> frozenset[int]:
        """Environments that need authorizing whatever the ruleset effect (e.g. a plan)."""


class Mode(enum.StrEnum):
    APPLY = "apply"  # apply, or raise ApprovalRequired where approval is needed
    AUTO = "auto"  # apply where allowed, otherwise propose a change request
    PROPOSE = "propose"  # always store a change request, never apply
    DRY_RUN = "dry_run"  # compute and authorize the effect, write nothing


class Authority(enum.StrEnum):
    NORMAL = "normal"
    # The kill switch and "serve X to everyone now": no approval, a reason always, the
    # emergency permission in every affected environment.
    EMERGENCY = "emergency"
    # Applying an approved change request, or automation carrying an approved plan.
    APPROVED = "approved"


@dataclass(frozen=True, slots=True)
class EnvironmentEffect:
    environment: Environment
    flags: tuple[str, ...]
    before: dict[str, Any]
    after: dict[str, Any]
    needs_approval: bool


@dataclass(slots=True)
class Outcome:
    effects: list[EnvironmentEffect]
    applied: bool
    change_request: Any = None
    saved: list[models.Model] = field(default_factory=list)

    def summary(self) -> str:
        if not self.effects:
            return "This change alters no environment's evaluation."
        return "; ".join(
            f"alters {e.environment.key} for {', '.join(e.flags) or 'no flag'}"
            for e in self.effects
        )


class _Rollback(Exception):  # noqa: N818 - control flow, never escapes run()
    pass


def _can_apply(who: Actor, env: Environment, authority: Authority) -> bool:
    if who.user is None:
        return True
    action: roles.Action = "kill" if authority is Authority.EMERGENCY else "edit_state"
    return roles.can(who.user, action, env)


def _can_propose(who: Actor, env: Environment) -> bool:
    return who.user is None or roles.can(who.user, "propose", env)


def _authorize(
    who: Actor, effects: list[EnvironmentEffect], authority: Authority, reason: str
) -> list[EnvironmentEffect]:
    """Raises PermissionDenied or ChangeRejected; marks the effects that need approval."""
    decided: list[EnvironmentEffect] = []
    for effect in effects:
        env = effect.environment
        if who.environments is not None and env.pk not in who.environments:
            raise PermissionDenied(
                f"This change alters {env.key} ({', '.join(effect.flags) or 'its rules'}), "
                "outside the environment this API key is scoped to."
            )
        allowed = _can_apply(who, env, authority)
        if authority is Authority.EMERGENCY and not allowed:
            raise PermissionDenied(f"You may not use emergency actions in {env.key}.")
        needs_approval = authority is Authority.NORMAL and (env.requires_approval or not allowed)
        if needs_approval and not _can_propose(who, env):
            raise PermissionDenied(
                f"You may not change {env.key}: this change alters "
                f"{', '.join(effect.flags) or 'its evaluation'} there."
            )
        if (env.is_production or authority is Authority.EMERGENCY) and not reason.strip():
            raise ChangeRejected(
                [FieldError("reason", f"Give a reason: this change alters {env.key}.", "required")]
            )
        decided.append(
            EnvironmentEffect(env, effect.flags, effect.before, effect.after, needs_approval)
        )
    return decided


def _validate(
    environments: list[Environment], docs: dict[int, dict[str, Any]], subject: str | None
) -> None:
    errors: dict[tuple[str, str], FieldError] = {}
    for env in environments:
        for err in validate_document(docs[env.pk]):
            path = relative(err.path, subject)
            errors.setdefault((path, err.message), FieldError(path, err.message, err.code))
    if errors:
        raise ChangeRejected(list(errors.values()))


def _record_affected_states(
    effects: list[EnvironmentEffect],
    saved: list[models.Model],
    label: str,
    who: Actor,
    source: str,
    reason: str,
) -> None:
    """A history record on every affected flag state the change did not write itself, so the
    flag's own history shows what reached it and through which object."""
    written = {obj.pk for obj in saved if isinstance(obj, FlagState)}
    for effect in effects:
        states = FlagState.objects.filter(
            environment=effect.environment, flag__key__in=effect.flags
        ).exclude(pk__in=written)
        for state in states:
            stamp(
                state,
                user=who.user,
                source=source,
                reason=f"changed by {label}: {reason}".strip(": "),
            )
            state.save(update_fields=["updated_at"])


def run(
    changes: Sequence[Change],
    *,
    who: Actor,
    source: str,
    reason: str,
    mode: Mode = Mode.APPLY,
    authority: Authority = Authority.NORMAL,
    approved_environments: frozenset[int] = frozenset(),
    applying: int | None = None,
) -> Outcome:
    """Runs ``changes`` (of one project) through the pipeline as one atomic write."""
    if not changes:
        raise ValueError("nothing to change")
    project_id = changes[0].project_id
    if any(c.project_id != project_id for c in changes):
        raise ValueError("one write changes one project")
    label = changes[0].label if len(changes) == 1 else f"{len(changes)} changes"
    subject = changes[0].subject if len(changes) == 1 else None
    outcome = Outcome(effects=[], applied=False)
    with transaction.atomic():
        project = Project.objects.get(pk=project_id)
        environments = list(Environment.objects.filter(project=project).select_related("project"))
        rulesets = lock_rulesets(environments)
        before = {env.pk: build_ruleset_document(env) for env in environments}
        try:
            with transaction.atomic():
                for change in changes:
                    change.authorize(who)
                    outcome.saved.extend(change.apply(who, source, reason))
                after = {
                    env.pk: build_ruleset_document(env, version=rulesets[env.pk].version + 1)
                    for env in environments
                }
                _validate(environments, after, subject)
                declared = frozenset().union(*(c.declared_environments() for c in changes))
                raw = [
                    EnvironmentEffect(
                        env,
                        tuple(changed_flags(before[env.pk], after[env.pk])),
                        before[env.pk],
                        after[env.pk],
                        needs_approval=False,
                    )
                    for env in environments
                ]
                raw = [e for e in raw if e.flags or e.environment.pk in declared]
                effects = _authorize(who, raw, authority, reason)
                if authority is Authority.APPROVED and who.user is not None:
                    # An approval covers the environments it was given for, no more.
                    for e in effects:
                        if e.environment.pk not in approved_environments and not _can_apply(
                            who, e.environment, Authority.NORMAL
                        ):
                            raise PermissionDenied(
                                f"The approval does not cover {e.environment.key}."
                            )
                outcome.effects = effects
                needs_approval = any(e.needs_approval for e in effects)
                if mode is Mode.DRY_RUN:
                    raise _Rollback
                if mode is Mode.PROPOSE or (needs_approval and mode is Mode.AUTO):
                    raise _Rollback
                if needs_approval:
                    raise ApprovalRequired(
                        ", ".join(e.environment.key for e in effects if e.needs_approval)
                    )
                for env in environments:
                    store_ruleset(rulesets[env.pk], after[env.pk])
                _record_affected_states(effects, outcome.saved, label, who, source, reason)
                outcome.applied = True
        except _Rollback:
            pass
        if not outcome.applied and mode is not Mode.DRY_RUN:
            from flags.services.changes import propose

            outcome.change_request = propose(
                project, changes, outcome.effects, who=who, source=source, reason=reason
            )
        elif outcome.applied:
            from flags.services.changes import mark_stale

            mark_stale(project, outcome.saved, applying)
    return outcome
