"""Rollout use cases: create from a template, approve, start, steer, and the scheduled check.

Every function runs one transaction holding the plan's row lock; the timeline record, the plan's
new position and the flag write (rollouts.apply) commit together or not at all, so a worker
killed mid-check leaves nothing half done, and the next check simply runs again. Two workers:
the scheduled check takes the lock with SKIP LOCKED and re-reads ``next_check_at`` under it, so
a plan is checked by one of them and a stage is never applied twice. A worker that stops
without closing its connection (frozen, its machine lost) loses the lock after an idle limit
(``_end_if_abandoned``). docs/rollouts.md "Failure safety" lists what the tests show.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AnonymousUser, User
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import connection, transaction
from django.utils import timezone

from analytics.stage_units import unit_coverage
from analytics.stats.ratio import Bounds
from flags import roles
from flags.errors import ApprovalRequired, ChangeRejected, VersionConflict
from flags.models import FlagState, Segment
from rollouts import apply, notify
from rollouts.decision import (
    Action,
    Clock,
    Evidence,
    GuardrailSpec,
    HealthAction,
    HealthCheck,
    HealthPolicy,
    PlanSpec,
    StageSpec,
    Verdict,
    decide,
)
from rollouts.definition import approval_covers
from rollouts.evidence import EvidenceRequest, gather
from rollouts.models import (
    FULL,
    HEALTH_CHECKS,
    NO_TRAFFIC_SECONDS,
    Guardrail,
    RolloutCheck,
    RolloutPlan,
    RolloutStage,
    WebhookTarget,
)
from rollouts.plan_templates import (
    DEFAULT_GUARDRAILS,
    TEMPLATES,
    GuardrailTemplate,
    StageTemplate,
)

logger = logging.getLogger(__name__)
Status = RolloutPlan.Status
UserLike = User | AnonymousUser


class RolloutError(Exception):
    """A request that cannot be carried out; ``field`` names what is wrong."""

    def __init__(self, field: str, message: str, status: int = 400) -> None:
        self.field = field
        self.message = message
        self.status = status
        super().__init__(f"{field}: {message}")


def time_scale() -> float:
    return float(getattr(settings, "FLAGSITE_ROLLOUT_TIME_SCALE", 1.0))


def _require(user: UserLike | None, action: roles.Action, plan_or_state: Any) -> None:
    state = plan_or_state.flag_state if isinstance(plan_or_state, RolloutPlan) else plan_or_state
    if not roles.can(user, action, state):
        raise PermissionDenied(f"You may not {action.replace('_', ' ')} in {state.environment}.")


def _reason(reason: str) -> str:
    reason = (reason or "").strip()
    if not reason:
        raise RolloutError("reason", "Say why (a reason is required).")
    return reason


# --- Specs for the pure decision ---------------------------------------------------------------


def guardrail_specs(plan: RolloutPlan) -> tuple[GuardrailSpec, ...]:
    return tuple(
        GuardrailSpec(g.metric, g.mode, g.yellow, g.red, g.higher_is_worse, g.custom_name)
        for g in plan.guardrails.all()
    )


def stage_spec(plan: RolloutPlan, stage: RolloutStage) -> StageSpec:
    min_sample = stage.min_sample if stage.min_sample is not None else plan.min_sample
    return StageSpec(stage.position, stage.weight, stage.bake_seconds, min_sample,
                     stage.requires_approval)  # fmt: skip


def plan_spec(
    plan: RolloutPlan,
    stages: Sequence[RolloutStage],
    guardrails: tuple[GuardrailSpec, ...] | None = None,
) -> PlanSpec:
    requires_approval = plan.flag_state.environment.requires_approval
    return PlanSpec(
        tuple(stage_spec(plan, s) for s in stages),
        guardrail_specs(plan) if guardrails is None else guardrails,
        plan.insufficient_traffic_extension_seconds,
        environment_requires_approval=requires_approval,
        # Only where it matters: the fingerprint reads the guardrails' rows once more.
        plan_approved=requires_approval and approval_covers(plan, stages),
        health=HealthPolicy(
            no_traffic_seconds=float(plan.no_traffic_seconds),
            actions={HealthCheck(c): HealthAction(a) for c, a in plan.health_actions().items()},
        ),
    )


def evidence_request(
    plan: RolloutPlan,
    guardrails: tuple[GuardrailSpec, ...] | None = None,
    stages: Sequence[RolloutStage] | None = None,
) -> EvidenceRequest:
    return EvidenceRequest(
        plan.on_variant,
        plan.off_variant,
        guardrail_specs(plan) if guardrails is None else guardrails,
        plan.false_positive_rate,
        plan.design_sample,
        comparable_stages=max(
            1,
            sum(1 for s in (_stages(plan) if stages is None else stages) if stage_is_comparable(s)),
        ),
        unit_attribute=plan.bucket_by,
    )


def stage_is_comparable(stage: RolloutStage) -> bool:
    """Both cohorts served, chosen at random: a split strictly between 0 and 100 % and no
    segment (a segment's users are chosen, so they are no control's equal)."""
    return stage.segment_id is None and 0 < stage.weight < FULL


# --- Creating and approving ----------------------------------------------------------------------


@dataclass(frozen=True)
class WebhookSpec:
    url: str
    secret: str
    slack_format: bool = False


def check_new_plan(
    flag_state: FlagState,
    *,
    template: str,
    user: UserLike | None,
    segment: Segment | None = None,
    on_variant: str = "on",
    rollback_action: str = RolloutPlan.RollbackAction.ZERO,
    stages: Sequence[StageTemplate] | None = None,
    bucket_by: str = "targetingKey",
    no_traffic_seconds: int = 24 * 3600,
    health_actions: Mapping[str, str] | None = None,
) -> list[StageTemplate]:
    """What ``create_from_template`` refuses, checked before anything is written (the admin's
    form asks it too, to show the problem on the field): the stages the plan would have.
    What only warns (nobody to tell, events without the unit) is ``start_problems``'s."""
    _require(user, "edit_state", flag_state)
    if not bucket_by.strip() or len(bucket_by) > 100:
        raise RolloutError("bucket_by", "The context attribute to bucket by, 1 to 100 characters.")
    low, high = NO_TRAFFIC_SECONDS
    if not low <= no_traffic_seconds <= high:
        raise RolloutError(
            "no_traffic_seconds", f"From {low} s to {high} s ({high // 86400} days)."
        )
    unknown = sorted(set(health_actions or {}) - set(HEALTH_CHECKS))
    if unknown:
        raise RolloutError("health_actions", f"No health check {unknown[0]!r}: one of "
                           f"{list(HEALTH_CHECKS)}.")  # fmt: skip
    for check, action in (health_actions or {}).items():
        if action not in RolloutPlan.HealthAction.values:
            raise RolloutError(
                f"health_actions.{check}", f"Choose one of {RolloutPlan.HealthAction.values}."
            )
    if template not in TEMPLATES and stages is None:
        raise RolloutError("template", f"Unknown template; choose one of {sorted(TEMPLATES)}.")
    variants = flag_state.flag.variants or {}
    off_variant = flag_state.off_variant
    if on_variant not in variants or on_variant == off_variant:
        raise RolloutError(
            "on_variant", f"The flag has no variant {on_variant!r} besides its off variant."
        )
    if rollback_action not in RolloutPlan.RollbackAction.values:
        raise RolloutError("rollback_action", f"Choose one of {RolloutPlan.RollbackAction.values}.")
    stage_rows = list(stages) if stages is not None else list(TEMPLATES[template][1])
    if not stage_rows:
        raise RolloutError("stages", "A plan needs at least one stage.")
    weights = [row.weight for row in stage_rows]
    if any(not 0 <= w <= 100_000 for w in weights) or weights != sorted(weights):
        raise RolloutError("stages", "Stage weights run from 0 to 100000 and never decrease.")
    if any(row.uses_segment for row in stage_rows) and segment is None:
        raise RolloutError("segment", "This template starts with a segment: choose one.")
    if segment is not None and segment.project_id != flag_state.flag.project_id:
        raise RolloutError("segment", "The segment belongs to another project.")
    return stage_rows


def create_from_template(
    flag_state: FlagState,
    *,
    template: str,
    user: UserLike | None,
    name: str = "",
    segment: Segment | None = None,
    on_variant: str = "on",
    bucket_by: str = "targetingKey",
    check_interval_seconds: int = 300,
    min_sample: int = 200,
    rollback_action: str = RolloutPlan.RollbackAction.ZERO,
    email_recipients: Iterable[str] = (),
    webhooks: Iterable[WebhookSpec] = (),
    stages: Sequence[StageTemplate] | None = None,
    no_traffic_seconds: int = 24 * 3600,
    health_actions: Mapping[str, str] | None = None,
    guardrails: Sequence[GuardrailTemplate] = DEFAULT_GUARDRAILS,
) -> RolloutPlan:
    """A draft plan from a template (or explicit stages) with the default guardrails. Nothing
    is served until ``start``. ``health_actions``: the action of each health check named
    (``HEALTH_CHECKS``: warn, hold or rollback); the others keep their defaults. A plan that
    could not start yet is still made: ``start_problems`` says why, as warnings."""
    stage_rows = check_new_plan(
        flag_state, template=template, user=user, segment=segment, on_variant=on_variant,
        rollback_action=rollback_action, stages=stages, bucket_by=bucket_by,
        no_traffic_seconds=no_traffic_seconds, health_actions=health_actions,
    )  # fmt: skip
    off_variant = flag_state.off_variant
    user_obj = user if user is not None and user.is_authenticated else None
    with transaction.atomic():
        plan = RolloutPlan.objects.create(
            flag_state=flag_state,
            name=name or f"{flag_state.flag.key} {template or 'custom'} rollout",
            template=template if stages is None else "",
            on_variant=on_variant,
            off_variant=off_variant,
            bucket_by=bucket_by,
            check_interval_seconds=check_interval_seconds,
            min_sample=min_sample,
            rollback_action=rollback_action,
            # Only the plan's own: with none, messages go to OPS_EMAILS as it is when they are
            # sent (rollouts.notify.recipients), not as it was when the plan was made.
            email_recipients=list(email_recipients),
            no_traffic_seconds=no_traffic_seconds,
            **{f"health_{check}": action for check, action in (health_actions or {}).items()},
            created_by=user_obj,
        )
        for position, row in enumerate(stage_rows):
            RolloutStage.objects.create(
                plan=plan,
                position=position,
                name=row.name,
                weight=row.weight,
                bake_seconds=row.bake_seconds,
                requires_approval=row.requires_approval,
                segment=segment if row.uses_segment else None,
                min_sample=row.min_sample,
            )
        for g in guardrails:
            Guardrail.objects.create(
                plan=plan, metric=g.metric, mode=g.mode, yellow=g.yellow, red=g.red,
                higher_is_worse=g.higher_is_worse,
            )  # fmt: skip
        for hook in webhooks:
            WebhookTarget.objects.create(
                plan=plan, url=hook.url, secret=hook.secret, slack_format=hook.slack_format
            )
    return plan


def add_guardrail(
    plan: RolloutPlan,
    *,
    user: UserLike | None,
    metric: str,
    mode: str,
    yellow: float,
    red: float,
    higher_is_worse: bool = True,
    custom_name: str = "",
) -> Guardrail:
    """One more guardrail on a plan that has not finished: a stored metric, e.g. a custom count
    metric by the name its events carry (``{"type": "custom", "name": ...}``)."""
    if metric not in Guardrail.Metric.values:
        raise RolloutError("metric", f"Choose one of {Guardrail.Metric.values}.")
    if mode not in Guardrail.Mode.values:
        raise RolloutError("mode", f"Choose one of {Guardrail.Mode.values}.")
    guardrail = Guardrail(
        metric=metric, mode=mode, yellow=yellow, red=red, higher_is_worse=higher_is_worse,
        custom_name=custom_name.strip(),
    )  # fmt: skip
    try:
        guardrail.full_clean(exclude=["plan"])
    except ValidationError as exc:
        field, messages = next(iter(exc.message_dict.items()))
        raise RolloutError(field, messages[0]) from None
    with transaction.atomic():
        locked = _lock(plan)
        _require(user, "edit_state", locked)
        _require_active(locked, Status.DRAFT, *RolloutPlan.ACTIVE)
        guardrail.plan = locked
        guardrail.save()
        return guardrail


def _lock(plan: RolloutPlan | int) -> RolloutPlan:
    pk = plan if isinstance(plan, int) else plan.pk
    return (
        RolloutPlan.objects.select_for_update(of=("self",))
        .select_related("flag_state__environment__project", "flag_state__flag", "approved_by")
        .get(pk=pk)
    )


def _next_sequence(plan: RolloutPlan) -> int:
    """The next record's number; the caller holds the plan's lock."""
    return plan.last_sequence + 1


def _bounds(bounds: Bounds | None) -> dict[str, float | None] | None:
    if bounds is None:
        return None

    def finite(value: float) -> float | None:
        return value if math.isfinite(value) else None

    return {
        "estimate": finite(bounds.estimate),
        "low": finite(bounds.alarm_low),
        "high": finite(bounds.alarm_high),
        "progress_low": finite(bounds.clear_low),
        "progress_high": finite(bounds.clear_high),
    }


def _record(
    plan: RolloutPlan,
    now: datetime,
    verdict: str,
    reasons: Sequence[dict[str, str]],
    *,
    actor: str,
    manual: bool,
    applied: str = "",
    stage: int | None = None,
    evidence: Evidence | None = None,
    result: Verdict | None = None,
    sequence: int | None = None,
) -> RolloutCheck:
    if sequence is None:  # the plan was saved before: the number is written on its own
        sequence = _next_sequence(plan)
        RolloutPlan.objects.filter(pk=plan.pk).update(last_sequence=sequence)
    plan.last_sequence = sequence
    samples: dict[str, Any] = {}
    if evidence is not None:
        samples = {
            "treatment_users": evidence.treatment_users,
            "control_users": evidence.control_users,
            "stage_treatment_users": evidence.stage_treatment_users,
            "stage_control_users": evidence.stage_control_users,
            "tests": {
                name: {
                    "ok": m.ok,
                    "control": m.control_value,
                    "treatment": m.treatment_value,
                    "effect": m.effect,
                    "fixed_significant": m.fixed_significant,
                    "sequential_p": m.sequential_p,
                    "sequential_reject": m.sequential_reject,
                    "ratio": _bounds(m.ratio),
                    "difference": _bounds(m.difference),
                    "message": m.message,
                }
                for name, m in evidence.metrics.items()
            },
            "window": "the current stage, since it started",
            "unit": evidence.unit_attribute,
            "comparable": evidence.comparable,
            "requests": evidence.requests,
            "error_events": evidence.error_events,
            "missing_unit_share": evidence.missing_unit_share,
            "both_variants_units": evidence.both_variants_units,
            "warnings": [w.as_dict() for w in result.warnings] if result else [],
        }
    return RolloutCheck.objects.create(
        plan=plan,
        sequence=sequence,
        checked_at=now,
        stage=plan.current_stage if stage is None else stage,
        verdict=verdict,
        reasons=list(reasons),
        guardrails=[g.as_dict() for g in result.guardrails] if result else [],
        samples=samples,
        sample_ratio=(
            {"mismatch": evidence.sample_ratio_mismatch, "sequential_p": evidence.sample_ratio_p}
            if evidence is not None
            else None
        ),
        applied=applied,
        actor=actor,
        manual=manual,
    )


def _who(user: UserLike | None) -> str:
    return str(user) if user is not None else "system"


def record_edit(
    plan: RolloutPlan, *, user: UserLike | None, what: Sequence[str], reason: str
) -> RolloutCheck:
    """The timeline's record of a change to the plan itself (made in the admin's form and
    inlines), with who, what and why; says so when the plan's approval no longer covers it."""
    reason = _reason(reason)
    with transaction.atomic():
        locked = _lock(plan)
        _require(user, "edit_state", locked)
        message = f"changed {', '.join(what)}: {reason}"
        if locked.approved_by_id is not None and not approval_covers(locked):
            message += "; the approval no longer covers the plan: request it again"
        return _record(locked, timezone.now(), RolloutCheck.Verdict.EDIT,
                       [{"code": "edited", "message": message}],
                       actor=_who(user), manual=True)  # fmt: skip


# --- Starting and steering -----------------------------------------------------------------------


def _stages(plan: RolloutPlan) -> list[RolloutStage]:
    return list(plan.stages.select_related("segment").order_by("position"))


def _schedule(plan: RolloutPlan, now: datetime) -> None:
    plan.last_checked_at = now
    plan.next_check_at = now + timedelta(seconds=plan.check_interval_seconds / time_scale())


def _evidence_reason(plan: RolloutPlan, what: str, why: str) -> str:
    return f"rollout plan #{plan.pk} ({plan.name}): {what}. {why}"


UNIT_LOOKBACK = timedelta(days=7)  # the events start_problems reads for the plan's unit


def start_problems(plan: RolloutPlan, *, now: datetime | None = None) -> list[RolloutError]:
    """What would keep a draft from starting, besides its state and approval, each as the error
    ``start`` raises: nobody would be told of a rollback, or the flag's recent events do not
    carry the unit it buckets by (its checks would compare units they cannot see). Creating a
    plan reports these as warnings (the API's ``warnings``, a message in the admin), since they
    are fixed outside the plan; ``start`` refuses the first."""
    now = now or timezone.now()
    problems: list[RolloutError] = []
    if notify.nobody_to_tell(plan):
        problems.append(RolloutError("recipients", notify.NOBODY_TOLD, 409))
    unit = plan.bucket_by
    if unit != "targetingKey":  # the context key: every event has one
        state = plan.flag_state
        flag = state.flag.key
        custom = plan.guardrails.filter(metric=Guardrail.Metric.CUSTOM)
        events, missing = unit_coverage(
            state.environment_id, flag, unit, now - UNIT_LOOKBACK, now,
            custom_names=sorted(set(custom.values_list("custom_name", flat=True))),
        )  # fmt: skip
        # No events yet is no evidence either way: the checks verify the unit as traffic comes.
        if events and missing:
            problems.append(RolloutError(
                "bucket_by",
                f"events of {flag} do not carry the unit {unit}: {missing} of {events} events "
                f"in the last {UNIT_LOOKBACK.days} days have no units.{unit}; send it with "
                "every exposure and metric event (SDK context attribute) or bucket by "
                "targetingKey",
                409,
            ))  # fmt: skip
    return problems


def start(
    plan: RolloutPlan, *, user: UserLike | None, reason: str, now: datetime | None = None
) -> RolloutPlan:
    reason = _reason(reason)
    now = now or timezone.now()
    with transaction.atomic():
        locked = _lock(plan)
        _require(user, "edit_state", locked)
        if locked.status != Status.DRAFT:
            raise RolloutError("status", f"The plan is {locked.get_status_display()}.", 409)
        env = locked.flag_state.environment
        if env.requires_approval and not approval_covers(locked):
            raise RolloutError(
                "approval",
                f"{env.key} requires approval: request it and have the change request "
                "approved first (a plan changed since its approval needs it again).",
                409,
            )
        if RolloutPlan.objects.filter(
            flag_state=locked.flag_state, status__in=RolloutPlan.ACTIVE
        ).exists():
            raise RolloutError("flag_state", "Another rollout of this flag is active here.", 409)
        problems = start_problems(locked, now=now)
        if problems:
            raise problems[0]
        first = _stages(locked)[0]
        state = FlagState.objects.get(pk=locked.flag_state_id)
        text = _evidence_reason(locked, f"start at stage 1 ({first})", reason)
        try:
            version = apply.apply_stage(locked, first, state.version, text)
        except ChangeRejected as exc:
            raise RolloutError("flag_state", str(exc)) from exc
        locked.status = Status.RUNNING
        locked.current_stage = 0
        locked.started_at = locked.stage_started_at = now
        locked.applied_state_version = version
        locked.version += 1
        _schedule(locked, now)
        locked.save()
        _record(locked, now, RolloutCheck.Verdict.START, [{"code": "start", "message": reason}],
                actor=_who(user), manual=True, applied=f"stage 1 ({first})")  # fmt: skip
    return locked


def _require_active(plan: RolloutPlan, *statuses: str) -> None:
    if plan.status not in statuses:
        raise RolloutError("status", f"The plan is {plan.get_status_display()}.", 409)


def pause(plan: RolloutPlan, *, user: UserLike | None, reason: str) -> RolloutPlan:
    reason = _reason(reason)
    now = timezone.now()
    with transaction.atomic():
        locked = _lock(plan)
        _require(user, "edit_state", locked)
        _require_active(locked, Status.RUNNING)
        locked.status = Status.PAUSED
        locked.status_reason = reason
        locked.version += 1
        locked.save()
        _record(locked, now, RolloutCheck.Verdict.PAUSE, [{"code": "paused", "message": reason}],
                actor=_who(user), manual=True)  # fmt: skip
    return locked


def resume(plan: RolloutPlan, *, user: UserLike | None, reason: str) -> RolloutPlan:
    """Runs a paused rollout again. The flag's current targeting becomes the rollout's own (a
    hand edit that paused it is accepted); the stage's bake time starts over."""
    reason = _reason(reason)
    now = timezone.now()
    with transaction.atomic():
        locked = _lock(plan)
        _require(user, "edit_state", locked)
        _require_active(locked, Status.PAUSED)
        locked.status = Status.RUNNING
        locked.status_reason = ""
        locked.applied_state_version = FlagState.objects.get(pk=locked.flag_state_id).version
        locked.stage_started_at = now
        locked.version += 1
        _schedule(locked, now)
        locked.save()
        _record(locked, now, RolloutCheck.Verdict.RESUME, [{"code": "resumed", "message": reason}],
                actor=_who(user), manual=True)  # fmt: skip
    return locked


def _progress(locked: RolloutPlan, stages: list[RolloutStage], now: datetime, text: str) -> str:
    """Moves to the next stage, or completes; returns what was applied."""
    index = locked.current_stage
    if index >= len(stages) - 1:
        locked.status = Status.COMPLETED
        locked.finished_at = now
        return "completed"
    nxt = stages[index + 1]
    expected = locked.applied_state_version or 0
    locked.applied_state_version = apply.apply_stage(locked, nxt, expected, text)
    locked.current_stage = index + 1
    locked.stage_started_at = now
    return f"stage {index + 2} ({nxt})"


def advance(plan: RolloutPlan, *, user: UserLike | None, reason: str) -> RolloutPlan:
    """A person moves the rollout to its next stage now (this is also a stage's approval)."""
    reason = _reason(reason)
    now = timezone.now()
    with transaction.atomic():
        locked = _lock(plan)
        _require(user, "edit_state", locked)
        _require_active(locked, Status.RUNNING, Status.PAUSED)
        env = locked.flag_state.environment
        if env.requires_approval and not approval_covers(locked):
            raise RolloutError(
                "approval",
                f"{env.key} requires approval: request it and have the change request "
                "approved first (a plan changed since its approval needs it again).",
                409,
            )
        stages = _stages(locked)
        text = _evidence_reason(locked, "advanced by hand", f"{reason} (by {_who(user)})")
        try:
            applied = _progress(locked, stages, now, text)
        except VersionConflict as exc:
            raise RolloutError("flag_state", f"The flag was edited by hand: {exc}", 409) from exc
        locked.version += 1
        _schedule(locked, now)
        locked.save()
        verdict = (
            RolloutCheck.Verdict.COMPLETE
            if locked.status == Status.COMPLETED
            else RolloutCheck.Verdict.PROGRESS
        )
        record = _record(locked, now, verdict, [{"code": "advanced", "message": reason}],
                         actor=_who(user), manual=True, applied=applied)  # fmt: skip
        if locked.status == Status.COMPLETED:
            notify.queue(locked, record, "completed", reason)
    return locked


def rollback(plan: RolloutPlan, *, user: UserLike | None, reason: str) -> RolloutPlan:
    reason = _reason(reason)
    now = timezone.now()
    with transaction.atomic():
        locked = _lock(plan)
        _require(user, "kill", locked)
        _require_active(locked, Status.RUNNING, Status.PAUSED, Status.COMPLETED)
        text = _evidence_reason(locked, "rolled back by hand", f"{reason} (by {_who(user)})")
        apply.apply_rollback(locked, text)
        locked.status = Status.ROLLED_BACK
        locked.status_reason = reason
        locked.finished_at = now
        locked.version += 1
        locked.save()
        record = _record(locked, now, RolloutCheck.Verdict.ROLLBACK,
                         [{"code": "manual_rollback", "message": reason}],
                         actor=_who(user), manual=True, applied=locked.rollback_action)  # fmt: skip
        notify.queue(locked, record, "rolled_back", reason)
    return locked


def abort(plan: RolloutPlan, *, user: UserLike | None, reason: str) -> RolloutPlan:
    """Stops the rollout and leaves the flag as it is now."""
    reason = _reason(reason)
    now = timezone.now()
    with transaction.atomic():
        locked = _lock(plan)
        _require(user, "edit_state", locked)
        _require_active(locked, Status.DRAFT, Status.RUNNING, Status.PAUSED)
        locked.status = Status.ABORTED
        locked.status_reason = reason
        locked.finished_at = now
        locked.version += 1
        locked.save()
        _record(locked, now, RolloutCheck.Verdict.ABORT, [{"code": "aborted", "message": reason}],
                actor=_who(user), manual=True)  # fmt: skip
    return locked


# --- The scheduled check -----------------------------------------------------------------------


def _pause_for(locked: RolloutPlan, now: datetime, code: str, message: str) -> RolloutCheck:
    locked.status = Status.PAUSED
    locked.status_reason = message
    locked.version += 1
    _schedule(locked, now)
    locked.save()
    record = _record(locked, now, RolloutCheck.Verdict.PAUSE, [{"code": code, "message": message}],
                     actor=str(apply.actor_for(locked)), manual=False)  # fmt: skip
    notify.queue(locked, record, "paused", message)
    return record


def check(plan_id: int, now: datetime | None = None) -> RolloutCheck | None:
    """Checks one running rollout if it is due and applies the verdict. None: not due, not
    running, or another worker holds it right now."""
    now = now or timezone.now()
    outermost = not connection.in_atomic_block
    with transaction.atomic():
        if outermost:  # the limit is for this check's own transaction, not a caller's
            _end_if_abandoned()
        locked = (
            RolloutPlan.objects.select_for_update(of=("self",), skip_locked=True)
            .select_related("flag_state__environment__project", "flag_state__flag", "approved_by")
            .filter(pk=plan_id, status=Status.RUNNING)
            .first()
        )
        if locked is None or (locked.next_check_at is not None and locked.next_check_at > now):
            return None
        state = locked.flag_state
        if state.version != locked.applied_state_version:
            return _pause_for(
                locked, now, "manual_edit",
                f"the flag's targeting was edited outside the rollout (version {state.version}, "
                f"the rollout wrote version {locked.applied_state_version}): paused; resume to "
                "continue from the edited targeting",
            )  # fmt: skip
        stages = _stages(locked)
        stage = stages[locked.current_stage]
        guardrails = guardrail_specs(locked)  # one read for the evidence and the decision
        request = evidence_request(locked, guardrails, stages)
        evidence = gather(
            state, request, locked.stage_started_at or now, now,
            weight=stage.weight, comparable=stage_is_comparable(stage),
        )  # fmt: skip
        verdict = decide(
            plan_spec(locked, stages, guardrails),
            stage_spec(locked, stage),
            Clock(now, locked.stage_started_at or now, time_scale()),
            evidence,
        )
        return _apply_verdict(locked, stages, now, verdict, evidence)


def _end_if_abandoned() -> None:
    """Has PostgreSQL end this transaction's session if it sits idle for longer than the
    setting: a worker that stopped mid-check without closing its connection would otherwise
    hold the plan's lock, and every later pass would skip the plan, until TCP keepalive noticed
    (hours). SET LOCAL: only this transaction, the pooled connection keeps its defaults."""
    if connection.vendor != "postgresql":
        return  # SQLite (the embedded mode) has no row locks to hold
    ms = int(float(settings.FLAGSITE_ROLLOUT_CHECK_IDLE_TIMEOUT_SECONDS) * 1000)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT set_config('idle_in_transaction_session_timeout', %s, true)", [str(ms)]
        )


def _apply_verdict(
    locked: RolloutPlan,
    stages: list[RolloutStage],
    now: datetime,
    verdict: Verdict,
    evidence: Evidence,
) -> RolloutCheck:
    reasons = [r.as_dict() for r in verdict.reasons]
    summary = "; ".join(r.message for r in verdict.reasons)
    stage_index = locked.current_stage
    applied = ""
    event = ""
    sequence = _next_sequence(locked)
    codes = ", ".join(dict.fromkeys(str(c) for c in verdict.codes))
    # The flag's history keeps a short reason; the evidence is the timeline's check record.
    text = (
        f"rollout #{locked.pk} {verdict.action} at stage {stage_index + 1} "
        f"({stages[stage_index]}), check #{sequence}: {codes}"
    )
    if verdict.action == Action.ROLLBACK:
        locked.applied_state_version = apply.apply_rollback(locked, text)
        locked.status = Status.ROLLED_BACK
        locked.status_reason = summary
        locked.finished_at = now
        applied, event = locked.rollback_action, "rolled_back"
    elif verdict.action == Action.PROGRESS:
        try:
            with transaction.atomic():
                applied = _progress(locked, stages, now, text)
        except (VersionConflict, ChangeRejected, ApprovalRequired) as exc:
            return _pause_for(
                locked, now, "apply_failed", f"the next stage could not be applied: {exc}"
            )
        event = "completed" if locked.status == Status.COMPLETED else ""
    elif verdict.alert and locked.alerted_stage != stage_index:
        locked.alerted_stage = stage_index
        event = "held"
    locked.version += 1
    locked.last_sequence = sequence  # the record below has this number
    _schedule(locked, now)
    locked.save()
    record_verdict = (
        RolloutCheck.Verdict.COMPLETE if locked.status == Status.COMPLETED else str(verdict.action)
    )
    record = _record(
        locked, now, record_verdict, reasons, actor=str(apply.actor_for(locked)), manual=False,
        applied=applied, stage=stage_index, evidence=evidence, result=verdict, sequence=sequence,
    )  # fmt: skip
    told = notify.queue_warnings(locked, record, verdict.warnings)
    if event:
        notify.queue(locked, record, event, summary)
    elif not applied and not told:
        _commit_without_waiting_for_disk()
    return record


def _commit_without_waiting_for_disk() -> None:
    """For a check that wrote nothing but its own record and schedule (a hold, nearly every
    check): its commit does not wait for the WAL flush, which on a busy disk was most of a
    check's time. A database crash within the WAL writer's delay (under a second) may lose
    such a record, never half of one; the next pass then simply checks again. Checks that
    write the flag or queue notifications keep the normal, durable commit."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL synchronous_commit TO OFF")


def due_plan_ids(now: datetime) -> list[int]:
    return list(
        RolloutPlan.objects.filter(status=Status.RUNNING, next_check_at__lte=now)
        .order_by("next_check_at")
        .values_list("pk", flat=True)
    )


def check_due(now: datetime | None = None) -> list[RolloutCheck]:
    """One beat pass: every running rollout that is due. A failure in one does not stop the
    others (it is logged; its next pass tries again)."""
    now = now or timezone.now()
    done = []
    for plan_id in due_plan_ids(now):
        try:
            record = check(plan_id, now)
        except Exception:
            logger.exception("rollout check failed", extra={"plan_id": plan_id})
            continue
        if record is not None:
            done.append(record)
    return done
