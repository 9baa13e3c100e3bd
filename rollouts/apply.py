"""Every write a rollout makes to a flag, in one place: the seam to the flags write services.

Rollouts act as automation (``Actor.automation("rollout:<id>")``, ``Source.AUTOMATION``) with
the plan and its evidence in the reason, so the flag's history says who, why and on what
evidence. Callers hold the plan's row lock; these functions take the flag state's lock
through flags.services and return the FlagState version they wrote.

Every write goes through the flags write pipeline (flags.services.submit), which authorizes
it by its effect: a stage in an environment that requires approval carries the plan's one-time
approval (Authority.APPROVED); a rollback only reduces exposure and uses the emergency authority,
so it never waits for anyone; the kill switch is the fallback when the rollback's write fails.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import PermissionDenied
from django.db import transaction

from flags import services as flag_services
from flags.models import FlagState
from flags.services import Actor, Source
from rollouts.definition import approval_covers
from rollouts.models import FULL, RolloutPlan, RolloutStage

HISTORY_REASON_MAX = 1000  # flags.history.REASON_MAX_LENGTH: the timeline holds the rest


# apply_change appends "(change request #N, approved by NAME)" to the reason.
CHANGE_REQUEST_NOTE = 50


def _short(reason: str, limit: int = HISTORY_REASON_MAX) -> str:
    return reason if len(reason) <= limit else reason[: limit - 1] + "…"


def actor_for(plan: RolloutPlan) -> Actor:
    return Actor.automation(f"rollout:{plan.pk}")


def _segment_rule_id(plan: RolloutPlan) -> str:
    return f"rollout-{plan.pk}-segment"


def stage_changes(
    state: FlagState, plan: RolloutPlan, stage: RolloutStage | None
) -> dict[str, Any]:
    """The flag-state fields that serve ``stage`` (None: nobody gets the flag from the plan).

    The flag-on variant is listed first, so raising its weight keeps everyone who had it
    (the engine's buckets are ranges in list order): exposure only grows from stage to stage.
    Segments of earlier stages stay in, for the same reason.
    """
    weight = stage.weight if stage is not None else 0
    segments: list[str] = []
    if stage is not None:
        for earlier in plan.stages.filter(position__lte=stage.position).select_related("segment"):
            if earlier.segment is not None and earlier.segment.key not in segments:
                segments.append(earlier.segment.key)
    rule_id = _segment_rule_id(plan)
    rules = [r for r in (state.rules or []) if r.get("id") != rule_id]
    if segments:
        rules.insert(
            0,
            {
                "id": rule_id,
                "description": f"rollout {plan.pk}: segments first",
                "conditions": [{"operator": "in_segment", "values": segments}],
                "serve": {"variant": plan.on_variant},
            },
        )
    return {
        "enabled": True,
        "rules": rules,
        "default_serve": {
            "rollout": {
                "bucketBy": plan.bucket_by,
                "fallbackVariant": plan.off_variant,
                "variants": [
                    {"variant": plan.on_variant, "weight": weight},
                    {"variant": plan.off_variant, "weight": FULL - weight},
                ],
            }
        },
    }


def _write(
    plan: RolloutPlan,
    state: FlagState,
    changes: dict[str, Any],
    expected: int,
    reason: str,
    authority: flag_services.Authority | None = None,
) -> FlagState:
    """One step through the flags write pipeline, as the rollout's automation actor.

    The plan's one-time approval is the authority for its stages where the environment
    requires approval (Authority.APPROVED); without it the pipeline raises ApprovalRequired.
    """
    if authority is None:
        approved = approval_covers(plan)
        authority = flag_services.Authority.APPROVED if approved else flag_services.Authority.NORMAL
    edit = flag_services.Edit(flag_services.STATE, state, changes, expected)
    flag_services.submit(
        [edit], actor=actor_for(plan), source=Source.AUTOMATION, reason=reason,
        authority=authority,
    )  # fmt: skip
    written: FlagState = edit.target
    return written


def apply_stage(plan: RolloutPlan, stage: RolloutStage, expected_version: int, reason: str) -> int:
    """Serves ``stage``; VersionConflict if the flag state is no longer ``expected_version``."""
    state = plan.flag_state
    written = _write(plan, state, stage_changes(state, plan, stage), expected_version, reason)
    return written.version


def apply_rollback(plan: RolloutPlan, reason: str) -> int:
    """Takes the flag away from everyone the plan gave it to, at once and without a version
    check: a rollback only reduces exposure, so it wins over any concurrent edit."""
    state = FlagState.objects.select_related("environment", "flag").get(pk=plan.flag_state_id)
    # The pipeline's emergency authority never waits for approval, so 0 % is always possible.
    needs_kill = plan.rollback_action == RolloutPlan.RollbackAction.KILL
    if not needs_kill:
        changes = stage_changes(state, plan, None)
        changes.pop("enabled")  # rolling back to 0 % leaves the flag's on/off switch as it was
        try:
            with transaction.atomic():
                emergency = flag_services.Authority.EMERGENCY
                return _write(plan, state, changes, state.version, reason, emergency).version
        except (flag_services.ChangeRejected, flag_services.VersionConflict, PermissionDenied):
            pass  # e.g. a hand edit broke the rule layout: the kill switch still works
    killed = flag_services.kill_flag(
        state, actor=actor_for(plan), source=Source.AUTOMATION, reason=_short(reason)
    )
    return killed.version
