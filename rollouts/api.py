"""Management API for rollouts, under /api/v1/rollouts/.

Thin views over rollouts.services (which check roles through flags.roles). Bad input is a JSON
400 naming the field; a state conflict (already running, not approved) is a 409. A plan's
approval is requested here (``request-approval``: a change request, answered 202) and given in
the change-request flow, by someone else who may approve in the environment.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.exceptions import NotFound, PermissionDenied
from rest_framework.request import Request
from rest_framework.response import Response

from flags import roles
from flags.api.base import ApiView
from flags.api.pagination import Pagination
from flags.api.permissions import ManagementAccess, request_key
from flags.api.serializers import StrictCharField, key_field, reason_field
from flags.api.throttling import ManagementThrottle
from flags.models import FlagState, Segment
from flags.services import Source
from rollouts import approval, services
from rollouts.definition import approval_covers
from rollouts.models import (
    CHECK_INTERVAL_SECONDS,
    HEALTH_CHECKS,
    NO_TRAFFIC_SECONDS,
    RolloutCheck,
    RolloutPlan,
    validate_webhook_secret,
)
from rollouts.plan_templates import TEMPLATES


class WebhookIn(serializers.Serializer[Any]):
    url = serializers.URLField(max_length=500)
    secret = StrictCharField(max_length=200, validators=[validate_webhook_secret])
    slack_format = serializers.BooleanField(default=False)


def _action_field(what: str, default: str) -> serializers.ChoiceField:
    # One choice set for the five fields: the schema names it HealthActionEnum
    # (SPECTACULAR_SETTINGS' ENUM_NAME_OVERRIDES).
    return serializers.ChoiceField(
        choices=RolloutPlan.HealthAction.choices, required=False,
        help_text=f"{what} warn (tell people, carry on), hold or rollback; {default} unless given.",
    )  # fmt: skip


class HealthActionsIn(serializers.Serializer[Any]):
    """What each health check's finding does; a check left out keeps its default."""

    no_traffic = _action_field("No event of the flag within the no-traffic time:", "hold")
    no_error_events = _action_field("Traffic but not one error event:", "warn")
    unit_mismatch = _action_field("Events without the unit the plan buckets by:", "hold")
    sample_ratio_mismatch = _action_field("The stage's units do not follow its split:", "hold")
    both_variants = _action_field("The same unit served both variants:", "warn")

    def to_internal_value(self, data: Any) -> Any:
        # A misspelt check would otherwise be dropped in silence, leaving its default action.
        if isinstance(data, dict):
            unknown = sorted(str(k) for k in data if k not in self.fields)
            if unknown:
                raise serializers.ValidationError(
                    {k: [f"No such health check: one of {list(HEALTH_CHECKS)}."] for k in unknown}
                )
        return super().to_internal_value(data)


class HealthIn(serializers.Serializer[Any]):
    no_traffic_seconds = serializers.IntegerField(
        min_value=NO_TRAFFIC_SECONDS[0], max_value=NO_TRAFFIC_SECONDS[1], default=24 * 3600,
        help_text="How long a stage may see no event of the flag before the no-traffic check "
        "acts (600 s to 30 days; 24 h unless given).",
    )  # fmt: skip
    actions = HealthActionsIn(required=False)


class CreateIn(serializers.Serializer[Any]):
    project = key_field()
    flag = key_field()
    environment = key_field()
    template = serializers.ChoiceField(choices=sorted(TEMPLATES))
    name = StrictCharField(max_length=200, required=False, allow_blank=True, default="")
    segment = StrictCharField(max_length=100, required=False, allow_blank=True, default="")
    on_variant = StrictCharField(max_length=100, required=False, default="on")
    bucket_by = StrictCharField(max_length=100, required=False, default="targetingKey")
    check_interval_seconds = serializers.IntegerField(
        min_value=CHECK_INTERVAL_SECONDS[0], max_value=CHECK_INTERVAL_SECONDS[1], default=300
    )
    min_sample = serializers.IntegerField(min_value=0, max_value=2**31 - 1, default=200)
    rollback_action = serializers.ChoiceField(
        choices=RolloutPlan.RollbackAction.values, default=RolloutPlan.RollbackAction.ZERO
    )
    email_recipients = serializers.ListField(
        child=serializers.EmailField(max_length=254), max_length=50, default=list
    )
    webhooks = WebhookIn(many=True, default=list)
    health = HealthIn(required=False)

    def validate_webhooks(self, value: list[Any]) -> list[Any]:
        if len(value) > 20:
            raise serializers.ValidationError("At most 20 webhooks.")
        return value


class ReasonIn(serializers.Serializer[Any]):
    reason = reason_field(required=True)


def plan_out(plan: RolloutPlan) -> dict[str, Any]:
    state = plan.flag_state
    last = plan.checks.exclude(guardrails=[]).order_by("-sequence").first()
    return {
        "id": plan.pk,
        "name": plan.name,
        "flag": state.flag.key,
        "environment": state.environment.key,
        "status": plan.status,
        "status_reason": plan.status_reason,
        "current_stage": plan.current_stage + 1,
        "stage_started_at": plan.stage_started_at,
        "next_check_at": plan.next_check_at if plan.status == RolloutPlan.Status.RUNNING else None,
        "approved_by": str(plan.approved_by) if plan.approved_by else None,
        # False once the plan changed after its approval: it then needs approving again.
        "approval_current": approval_covers(plan),
        "rollback_action": plan.rollback_action,
        "version": plan.version,
        "stages": [
            {
                "position": s.position + 1,
                "name": s.name,
                "weight": s.weight,
                "percent": s.weight / 1000,
                "segment": s.segment.key if s.segment else None,
                "bake_seconds": s.bake_seconds,
                "requires_approval": s.requires_approval,
            }
            for s in plan.stages.select_related("segment")
        ],
        "guardrails": [
            {
                "metric": g.metric,
                "custom_name": g.custom_name,
                "mode": g.mode,
                "yellow": g.yellow,
                "red": g.red,
                "higher_is_worse": g.higher_is_worse,
            }
            for g in plan.guardrails.all()
        ],
        "guardrail_status": last.guardrails if last else [],
        "health": {
            "no_traffic_seconds": plan.no_traffic_seconds,
            "actions": plan.health_actions(),
        },
    }


def check_out(check: RolloutCheck) -> dict[str, Any]:
    return {
        "sequence": check.sequence,
        "checked_at": check.checked_at,
        "stage": check.stage + 1,
        "verdict": check.verdict,
        "reasons": check.reasons,
        "guardrails": check.guardrails,
        "samples": check.samples,
        "sample_ratio": check.sample_ratio,
        "applied": check.applied,
        "actor": check.actor,
        "manual": check.manual,
    }


class RolloutView(ApiView):
    permission_classes = [ManagementAccess]
    throttle_classes = [ManagementThrottle]
    writes_conflict = True  # a 409 when the plan's state does not allow the action

    def handle_exception(self, exc: Exception) -> Response:
        if isinstance(exc, services.RolloutError):
            body: dict[str, Any] = {"errors": [{"path": exc.field, "message": exc.message}]}
            if exc.status == 409:  # the API's conflict shape, with the field it is about
                body = {"detail": exc.message, **body}
            return Response(body, status=exc.status)
        if isinstance(exc, DjangoPermissionDenied):
            exc = PermissionDenied(str(exc))
        return super().handle_exception(exc)

    def plan(self, request: Request, pk: int) -> RolloutPlan:
        plan = get_object_or_404(
            RolloutPlan.objects.select_related(
                "flag_state__flag", "flag_state__environment__project", "approved_by"
            ),
            pk=pk,
        )
        key = request_key(request)
        if key is not None and key.environment_id != plan.flag_state.environment_id:
            raise PermissionDenied("This API key is scoped to another environment.")
        if not roles.can(request.user, "view", plan.flag_state):
            raise PermissionDenied("You may not view this rollout.")
        return plan

    def valid(self, serializer: serializers.Serializer[Any]) -> dict[str, Any]:
        serializer.is_valid(raise_exception=True)
        return dict(serializer.validated_data)


class RolloutList(RolloutView):
    @extend_schema(responses={200: dict}, operation_id="rollouts_list")
    def get(self, request: Request) -> Response:
        plans = RolloutPlan.objects.select_related(
            "flag_state__flag", "flag_state__environment__project", "approved_by"
        )
        for param, lookup in (
            ("project", "flag_state__flag__project__key"),
            ("flag", "flag_state__flag__key"),
            ("environment", "flag_state__environment__key"),
            ("status", "status"),
        ):
            if param in request.query_params:
                plans = plans.filter(**{lookup: request.query_params[param]})
        visible = [p for p in plans[:200] if roles.can(request.user, "view", p.flag_state)]
        return Response({"results": [plan_out(p) for p in visible]})

    @extend_schema(request=CreateIn, responses={201: dict}, operation_id="rollouts_create")
    def post(self, request: Request) -> Response:
        """Creates a draft plan from a template. The answer is the plan with ``warnings``: what
        would keep it from starting (nobody to tell of a rollback, recent events of the flag
        without the ``bucket_by`` unit), each a sentence; the plan is made all the same."""
        data = self.valid(CreateIn(data=request.data))
        state = (
            FlagState.objects.select_related("flag", "environment__project")
            .filter(
                flag__project__key=data["project"],
                flag__key=data["flag"],
                environment__key=data["environment"],
            )
            .first()
        )
        if state is None:
            raise services.RolloutError("flag", "No such flag in this project and environment.")
        key = request_key(request)
        if key is not None and key.environment_id != state.environment_id:
            raise PermissionDenied("This API key is scoped to another environment.")
        health: dict[str, Any] = data.get("health") or {}
        segment = None
        if data["segment"]:
            segment = Segment.objects.filter(
                project=state.flag.project, key=data["segment"]
            ).first()
            if segment is None:
                raise services.RolloutError("segment", "No such segment in this project.")
        plan = services.create_from_template(
            state, template=data["template"], user=request.user, name=data["name"],
            segment=segment, on_variant=data["on_variant"], bucket_by=data["bucket_by"],
            check_interval_seconds=data["check_interval_seconds"], min_sample=data["min_sample"],
            rollback_action=data["rollback_action"], email_recipients=data["email_recipients"],
            webhooks=[services.WebhookSpec(**w) for w in data["webhooks"]],
            no_traffic_seconds=health.get("no_traffic_seconds", 24 * 3600),
            health_actions=health.get("actions", {}),
        )  # fmt: skip
        warnings = [problem.message for problem in services.start_problems(plan)]
        return Response({**plan_out(plan), "warnings": warnings}, status=201)


class RolloutDetail(RolloutView):
    @extend_schema(responses={200: dict}, operation_id="rollouts_retrieve")
    def get(self, request: Request, pk: int) -> Response:
        return Response(plan_out(self.plan(request, pk)))


class TimelinePagination(Pagination):
    """A plan checked every few minutes for weeks has thousands of records: pages of 500."""

    default_limit = 500


class RolloutTimeline(RolloutView):
    @extend_schema(
        responses={200: dict}, operation_id="rollouts_timeline",
        parameters=[
            OpenApiParameter("limit", {"type": "integer", "minimum": 1, "maximum": 1000},
                             description="Records per page (500 unless given)."),
            OpenApiParameter("offset", {"type": "integer", "minimum": 0},
                             description="Records to skip."),
        ],
    )  # fmt: skip
    def get(self, request: Request, pk: int) -> Response:
        """The plan's checks and actions, oldest first: ``{count, next, previous, results}``."""
        plan = self.plan(request, pk)
        paginator = TimelinePagination()
        rows = paginator.paginate_queryset(plan.checks.order_by("sequence"), request, view=self)
        return paginator.get_paginated_response([check_out(c) for c in rows])


ACTIONS: dict[str, Callable[..., RolloutPlan]] = {
    "start": services.start,
    "pause": services.pause,
    "resume": services.resume,
    "advance": services.advance,
    "rollback": services.rollback,
    "abort": services.abort,
}


class RolloutAction(RolloutView):
    @extend_schema(
        request=ReasonIn, responses={200: dict, 202: dict}, operation_id="rollouts_action",
        parameters=[OpenApiParameter("action", str, OpenApiParameter.PATH, enum=[
            "request-approval", "start", "pause", "resume", "advance", "rollback", "abort"])],
    )  # fmt: skip
    def post(self, request: Request, pk: int, action: str) -> Response:
        if action not in ACTIONS and action != "request-approval":
            names = sorted([*ACTIONS, "request-approval"])
            raise NotFound(f"No such action: choose one of {names}.")
        plan = self.plan(request, pk)
        reason = self.valid(ReasonIn(data=request.data))["reason"]
        if action == "request-approval":
            # The change request is reviewed in the change-request flow (/api/v1/change-requests).
            change_request = approval.request_approval(
                plan, user=request.user, reason=reason, source=Source.API
            )
            plan.refresh_from_db()
            return Response({**plan_out(plan), "change_request": change_request.pk}, status=202)
        plan = ACTIONS[action](plan, user=request.user, reason=reason)
        return Response(plan_out(plan))
