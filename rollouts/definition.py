"""What a rollout plan's approval covers: its definition, as a fingerprint and in words.

An approval is given for one definition (the flag state, variants, bucketing, the stages and
their segments, the guardrails, the sample sizes, the rollback action, the health checks). Any
later change to it means the approval no longer covers the plan, whichever path made the
change (the admin's inlines, the API, a shell): the stages that need it then wait for a new one.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from rollouts.decision import DEFAULT_HEALTH_ACTIONS
from rollouts.models import RolloutPlan, RolloutStage

_DEFAULT_HEALTH = (
    int(RolloutPlan._meta.get_field("no_traffic_seconds").get_default()),
    sorted((str(check), str(action)) for check, action in DEFAULT_HEALTH_ACTIONS.items()),
)


def fingerprint(plan: RolloutPlan, stages: Sequence[RolloutStage] | None = None) -> str:
    """``stages``: the plan's stages in order, when the caller has read them already."""
    if stages is None:
        stages = list(plan.stages.order_by("position"))
    stage_rows = [
        (s.position, s.name, s.weight, s.segment_id, s.bake_seconds, s.min_sample,
         s.requires_approval)
        for s in stages
    ]  # fmt: skip
    guardrails = sorted(
        plan.guardrails.values_list(
            "metric", "custom_name", "mode", "yellow", "red", "higher_is_worse"
        )
    )
    fields = (
        plan.flag_state_id, plan.on_variant, plan.off_variant, plan.bucket_by,
        plan.rollback_action, plan.min_sample, plan.insufficient_traffic_extension_seconds,
        plan.false_positive_rate, plan.design_sample, plan.check_interval_seconds,
    )  # fmt: skip
    # A choice set in memory is an enum member whose repr is not its value's: as plain strings,
    # a plan just created and the same plan read back have one fingerprint.
    plain = tuple(str(value) if isinstance(value, str) else value for value in fields)
    parts: tuple[object, ...] = (plain, stage_rows, guardrails)
    # What the health checks do is part of what was approved. Only settings that differ from
    # the defaults enter the identity, so approvals given before these settings existed (every
    # plan then had the defaults) keep their fingerprints.
    health = (plan.no_traffic_seconds, sorted(plan.health_actions().items()))
    if health != _DEFAULT_HEALTH:
        parts = (*parts, health)
    identity = repr(parts).encode()
    return hashlib.blake2b(identity, digest_size=16).hexdigest()


def edit_token(plan: RolloutPlan) -> str:
    """Everything a person edits on the plan's admin page (its definition, name, recipients and
    webhooks), as a token: a page opened before another edit landed sends an older one back.
    The checks' own writes (status, stage, schedule) leave it alone, so they never conflict."""
    hooks = sorted(plan.webhooks.values_list("url", "secret", "slack_format"))
    identity = repr((fingerprint(plan), plan.name, plan.template, plan.email_recipients, hooks))
    return hashlib.blake2b(identity.encode(), digest_size=16).hexdigest()


def approval_covers(plan: RolloutPlan, stages: Sequence[RolloutStage] | None = None) -> bool:
    """Whether the plan was approved, for the definition it has now."""
    if plan.approved_by_id is None:
        return False
    return plan.approved_definition == fingerprint(plan, stages)


def describe(plan: RolloutPlan) -> str:
    """The plan in one line, for the approver: stages, bakes and guardrails."""
    stages = " → ".join(
        f"{s.weight / 1000:g}%{f' of {s.segment.key}' if s.segment else ''}"
        f" {s.bake_seconds / 3600:g} h{' (approval)' if s.requires_approval else ''}"
        for s in plan.stages.select_related("segment").order_by("position")
    )
    guardrails = ", ".join(
        f"{g.custom_name or g.metric} red {g.red:g} ({g.mode})" for g in plan.guardrails.all()
    )
    state = plan.flag_state
    return (
        f"rollout plan #{plan.pk} {plan.name!r} of {state.flag.key} in "
        f"{state.environment.key}: {stages}; guardrails {guardrails or 'none'}; "
        f"rollback: {plan.get_rollback_action_display()}"
    )
