"""A rollout plan's one-time approval, through the flags app's change-request flow.

Where an environment requires approval, a plan's stages reach the flag only once the plan has
been approved: its author (or anyone who may propose changes there) asks for it, which stores
a change request holding the plan's definition (``PlanApproval``, a kind of change registered
with flags.services); the request is reviewed like any other, by someone else who may approve
in that environment, and applying it marks the plan approved, for that definition only
(rollouts.definition). A request whose plan changed since it was made goes stale, as any change
request whose object moved on does.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.core.exceptions import PermissionDenied
from django.db import models, transaction
from django.utils import timezone

from flags import roles
from flags import services as flag_services
from flags.errors import VersionConflict
from flags.models import ChangeRequest
from flags.roles import UserLike
from flags.services import Actor, Mode, Source
from rollouts import definition
from rollouts.models import RolloutCheck, RolloutPlan
from rollouts.services import RolloutError, _lock, _reason, _record, _require, _who

KIND = "rollout_plan_approval"
Status = RolloutPlan.Status


@dataclass
class PlanApproval:
    """The change an approval request carries: "approve plan P as defined by F"."""

    plan: RolloutPlan
    definition: str
    project_id: int = field(init=False)

    def __post_init__(self) -> None:
        self.project_id = self.plan.flag_state.environment.project_id

    @property
    def label(self) -> str:
        return f"approval of {definition.describe(self.plan)}"

    @property
    def subject(self) -> str | None:
        return None

    def authorize(self, who: Actor) -> None:
        if who.user is not None:
            roles.require(who.user, "propose", self.plan.flag_state)

    def apply(self, who: Actor, source: str, reason: str) -> list[models.Model]:
        locked = _lock(self.plan)
        finished = locked.status not in (Status.DRAFT, *RolloutPlan.ACTIVE)
        if finished or definition.fingerprint(locked) != self.definition:
            raise VersionConflict(locked.version)  # the plan moved on since it was reviewed
        request = _request_for(locked, ChangeRequest.Status.APPROVED, self.definition)
        if request is None or request.reviewer is None:
            # The pipeline also runs a change while proposing it (then rolls it back): only
            # the application of a reviewed request approves the plan.
            return []
        if request.reviewer_id == locked.created_by_id:
            raise PermissionDenied("A plan's author cannot approve it, however it was asked.")
        now = timezone.now()
        locked.approved_by = request.reviewer
        locked.approved_at = now
        locked.approved_definition = self.definition
        locked.version += 1
        locked.save()
        _record(locked, now, RolloutCheck.Verdict.APPROVE,
                [{"code": "approved", "message": f"change request #{request.pk}, approved by "
                  f"{request.reviewer}: {request.review_comment or request.reason}"}],
                actor=str(request.reviewer), manual=True)  # fmt: skip
        return [locked]

    def payload(self) -> dict[str, Any]:
        return {"kind": KIND, "plan": self.plan.pk, "definition": self.definition}

    def declared_environments(self) -> frozenset[int]:
        # It changes no ruleset now, but it lets the plan change this environment later.
        return frozenset({self.plan.flag_state.environment_id})


def _request_for(plan: RolloutPlan, status: str, fingerprint: str) -> ChangeRequest | None:
    """The plan's approval request in ``status`` for this definition (the one
    flags.services.apply_change holds locked, when ``status`` is approved)."""
    candidates = ChangeRequest.objects.filter(
        project_id=plan.flag_state.environment.project_id, status=status
    ).select_related("reviewer")
    wanted = {"kind": KIND, "plan": plan.pk, "definition": fingerprint}
    return next((r for r in candidates if wanted in r.operations), None)


def _load(op: dict[str, Any]) -> PlanApproval:
    plan = RolloutPlan.objects.select_related("flag_state__environment", "flag_state__flag")
    try:
        return PlanApproval(plan.get(pk=int(op["plan"])), str(op["definition"]))
    except RolloutPlan.DoesNotExist as exc:
        raise VersionConflict(0) from exc


def register() -> None:
    flag_services.register_kind(KIND, _load)


def request_approval(
    plan: RolloutPlan, *, user: UserLike | None, reason: str, source: str = Source.ADMIN
) -> ChangeRequest:
    """Stores the change request that approves ``plan`` as it is defined now; a pending one for
    the same plan is returned as it is."""
    reason = _reason(reason)
    with transaction.atomic():
        locked = _lock(plan)
        _require(user, "propose", locked)
        if user is None:  # _require lets no anonymous caller through; this says so to mypy
            raise PermissionDenied("Requesting an approval needs a person.")
        if locked.status not in (Status.DRAFT, *RolloutPlan.ACTIVE):
            raise RolloutError("status", f"The plan is {locked.get_status_display()}.", 409)
        env = locked.flag_state.environment
        if not env.requires_approval:
            raise RolloutError("approval", f"{env.key} does not require approval.", 409)
        if definition.approval_covers(locked):
            raise RolloutError("approval", "The plan is approved as it stands.", 409)
        fingerprint = definition.fingerprint(locked)
        pending = _request_for(locked, ChangeRequest.Status.PENDING, fingerprint)
        if pending is not None:
            return pending
        change = PlanApproval(locked, fingerprint)
        outcome = flag_services.submit(
            [change], actor=user, source=source, reason=reason, mode=Mode.PROPOSE
        )
        request: ChangeRequest = outcome.change_request
        _record(locked, timezone.now(), RolloutCheck.Verdict.APPROVAL_REQUESTED,
                [{"code": "approval_requested",
                  "message": f"change request #{request.pk}: {reason}"}],
                actor=_who(user), manual=True)  # fmt: skip
    return request
