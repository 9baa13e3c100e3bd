"""A flag's targeting in one environment: edit, revert, propose, and the emergency actions."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.db import transaction

from flags.errors import ChangeRejected, FieldError
from flags.models import ChangeRequest, Environment, Flag, FlagState
from flags.notifications import notify_emergency
from flags.services.base import ActorLike, require, start
from flags.services.objects import STATE, Edit
from flags.services.pipeline import Authority, Mode, run
from flags.services.revert import revert_changes_of, revert_edit, snapshot
from flags.services.submit import submit

# Kinds whose "serve X to everyone now" may turn something ON, not only off.
EMERGENCY_SERVE_KINDS = (Flag.Kind.OPS, Flag.Kind.KILL_SWITCH)


def get_state(flag: Flag, environment: Environment) -> FlagState:
    rows = FlagState.objects.select_related(*STATE.select_related)
    return rows.get(flag=flag, environment=environment)


def update_flag_state(
    state: FlagState,
    *,
    changes: Mapping[str, Any],
    expected_version: object,
    actor: ActorLike,
    source: str,
    reason: str = "",
    mode: Mode = Mode.APPLY,
) -> FlagState:
    """Changes a flag's targeting in one environment (any of STATE_FIELDS).

    Raises VersionConflict if the state is no longer at ``expected_version`` and
    ApprovalRequired where the environment needs a second person (use request_change, or
    mode=Mode.AUTO to propose one instead).
    """
    edit = Edit(STATE, state, changes, expected_version)
    submit([edit], actor=actor, source=source, reason=reason, mode=mode)
    edited: FlagState = edit.target
    return edited


def request_change(
    state: FlagState,
    *,
    changes: Mapping[str, Any],
    expected_version: object,
    actor: ActorLike,
    source: str,
    reason: str = "",
) -> ChangeRequest:
    """Proposes a targeting change for approval; it is validated now and again on apply."""
    edit = Edit(STATE, state, changes, expected_version)
    outcome = submit([edit], actor=actor, source=source, reason=reason, mode=Mode.PROPOSE)
    request: ChangeRequest = outcome.change_request
    return request


def state_snapshot(state: Any) -> dict[str, Any]:
    """The editable fields of a flag state or one of its historical records."""
    return snapshot(STATE, state)


def revert_changes(state: FlagState, history_id: object) -> tuple[dict[str, Any], int]:
    return revert_changes_of(STATE, state, history_id)


def revert_flag_state(
    state: FlagState,
    history_id: object,
    *,
    actor: ActorLike,
    source: str,
    reason: str = "",
    expected_version: object = None,
    mode: Mode = Mode.APPLY,
) -> FlagState:
    """Restores the targeting of an earlier version as a new version, through the pipeline
    like any edit (ApprovalRequired where approval is needed)."""
    edit = revert_edit(STATE, state, history_id, expected_version)
    submit([edit], actor=actor, source=source, reason=reason, mode=mode)
    reverted: FlagState = edit.target
    return reverted


def _serving_everyone(state: FlagState, variant: str) -> bool:
    if variant == state.off_variant:
        return not state.enabled  # killed means switched off, whatever the rules served
    return (
        state.enabled
        and not state.rules
        and not state.prerequisites
        and state.default_serve == {"variant": variant}
    )


def emergency_edit(state: FlagState, variant: str) -> Edit | None:
    """The change that serves ``variant`` to everyone in the state's environment, or None when
    it already does. Serving the off variant is the kill switch; another variant clears the
    targeting (history keeps it for a revert)."""
    if variant not in (state.flag.variants or {}):
        raise ChangeRejected(
            [
                FieldError(
                    "variant", f"{state.flag.key} has no variant {variant!r}.", "unknown_variant"
                )
            ]
        )
    if _serving_everyone(state, variant):
        return None
    if variant == state.off_variant:
        return Edit(STATE, state, {"enabled": False}, state.version, note="(kill switch)")
    if state.flag.kind not in EMERGENCY_SERVE_KINDS:
        raise ChangeRejected(
            [
                FieldError(
                    "variant",
                    "Only ops and kill-switch flags can be turned on for everyone at once; "
                    "other flags only off.",
                    "not_emergency",
                )
            ]
        )
    changes = {
        "enabled": True,
        "rules": [],
        "prerequisites": [],
        "default_serve": {"variant": variant},
    }
    return Edit(
        STATE, state, changes, state.version, note=f"(emergency: serve {variant} to everyone)"
    )


def serve_now(
    target: FlagState | Flag,
    environment: Environment | None = None,
    *,
    variant: str,
    actor: ActorLike,
    source: str,
    reason: str = "",
) -> FlagState:
    """Serves ``variant`` to everyone in one environment at once: no version check and no
    approval step (the emergency path), a reason always, the emergency permission there. The
    approvers are told afterwards so they can review it. Idempotent."""
    who, text = start(actor, source, reason)
    if isinstance(target, Flag):
        if environment is None:
            raise TypeError("serve_now(flag, environment, ...) needs the environment")
        target = get_state(target, environment)
    with transaction.atomic():
        # Lock first, so the version the edit carries is the current one.
        locked: FlagState = STATE.lock(target.pk)
        require(who, "kill", locked)  # also when there is nothing to do: roles hold on every path
        edit = emergency_edit(locked, variant)
        if edit is None:
            return locked
        outcome = run([edit], who=who, source=source, reason=text, authority=Authority.EMERGENCY)
        if outcome.applied:
            transaction.on_commit(lambda: notify_emergency(edit.target, variant, who, text))
    result: FlagState = edit.target
    return result


def kill_flag(
    target: FlagState | Flag,
    environment: Environment | None = None,
    *,
    actor: ActorLike,
    source: str,
    reason: str = "",
) -> FlagState:
    """The kill switch: serves the off variant to everyone in one environment at once."""
    state = target if isinstance(target, FlagState) else None
    if state is None:
        if environment is None:
            raise TypeError("kill_flag(flag, environment, ...) needs the environment")
        state = get_state(target, environment)  # type: ignore[arg-type]
    return serve_now(state, variant=state.off_variant, actor=actor, source=source, reason=reason)


def kill_many(
    states: list[FlagState], *, actor: ActorLike, source: str, reason: str = ""
) -> list[FlagState]:
    """Kills several flag states in one transaction: every one, or none (the error names the
    one that blocked it)."""
    with transaction.atomic():
        return [kill_flag(s, actor=actor, source=source, reason=reason) for s in states]
