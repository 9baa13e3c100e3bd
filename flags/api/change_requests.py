"""Change requests over the API: propose, list, read, approve, reject, apply.

A proposal names its target and carries the same fields (and the same validation) as the
direct write it stands for; the pipeline stores it with its preview. Approving needs the
approve permission in every environment it alters and is never the author's own; applying
runs the pipeline again, so a request whose base moved on becomes stale (409).
"""

# ruff: noqa: N815 - the API speaks camelCase
from __future__ import annotations

from typing import Any

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import PermissionDenied
from rest_framework.request import Request
from rest_framework.response import Response

from flags import roles, services
from flags.api import serializers as s
from flags.api.management import SOURCE, ManagementView
from flags.models import ChangeRequest, Environment, Flag, FlagState, Project, Segment
from flags.preview import sentence

KINDS = ("state", "flag", "segment", "archive")
KIND_CHOICES = [(k, k) for k in KINDS]
PATCHES: dict[str, type[serializers.Serializer[Any]]] = {
    "state": s.StatePatch,
    "flag": s.FlagPatch,
    "segment": s.SegmentPatch,
}


class Target(serializers.Serializer[Any]):
    kind = serializers.ChoiceField(choices=KIND_CHOICES, help_text="What the change edits.")
    flag = serializers.CharField(required=False, max_length=100)
    environment = serializers.CharField(required=False, max_length=100)
    segment = serializers.CharField(required=False, max_length=100)


class ProposalIn(serializers.Serializer[Any]):
    target = Target()
    changes = serializers.DictField(
        required=False, default=dict, help_text="The fields, as the direct write takes them."
    )
    historyId = serializers.IntegerField(
        required=False, help_text="Instead of changes: restore this earlier version."
    )
    archived = serializers.BooleanField(required=False, default=True)
    version = serializers.IntegerField(help_text="The version of the target you saw.")
    reason = s.reason_field()


class DecisionIn(serializers.Serializer[Any]):
    reason = s.reason_field()


class ChangeRequestOut(serializers.ModelSerializer[ChangeRequest]):
    author = serializers.CharField(source="author.username", default=None, allow_null=True)
    reviewer = serializers.CharField(source="reviewer.username", default=None, allow_null=True)
    appliedBy = serializers.CharField(source="applied_by.username", default=None, allow_null=True)
    createdAt = serializers.DateTimeField(source="created_at")
    reviewComment = serializers.CharField(source="review_comment")
    environments = serializers.SerializerMethodField()
    sentence = serializers.SerializerMethodField()

    class Meta:
        model = ChangeRequest
        fields = [
            "id", "status", "summary", "sentence", "reason", "author", "reviewer",
            "reviewComment", "appliedBy", "createdAt", "environments", "preview", "operations",
        ]  # fmt: skip

    def get_environments(self, request: ChangeRequest) -> list[str]:
        envs = Environment.objects.filter(pk__in=request.environment_ids)
        return [e.key for e in envs.order_by("sort_order", "key")]

    def get_sentence(self, request: ChangeRequest) -> str:
        return sentence(request.preview)


def _required(name: str) -> services.ChangeRejected:
    return services.ChangeRejected(
        [services.FieldError(f"target.{name}", "This field is required for this kind.")]
    )


class ChangeRequestList(ManagementView):
    @extend_schema(
        parameters=[OpenApiParameter("status", str, enum=ChangeRequest.Status.values)],
        responses=ChangeRequestOut(many=True),
    )
    def get(self, request: Request, project: str) -> Response:
        """The project's change requests, newest first; filter: status."""
        proj = self.project(request, project)
        rows = ChangeRequest.objects.filter(project=proj).select_related(
            "author", "reviewer", "applied_by"
        )
        if "status" in request.query_params:
            chosen = s.query_choice(request.query_params, "status", ChangeRequest.Status.values)
            rows = rows.filter(status=chosen)
        return self.page(request, rows.order_by("-created_at", "-pk"), ChangeRequestOut)

    @extend_schema(request=ProposalIn, responses={201: ChangeRequestOut})
    def post(self, request: Request, project: str) -> Response:
        """Proposes a change for review (it is validated and previewed now)."""
        proj = self.project(request, project)
        data = self.valid(ProposalIn(), request.data)
        change, reason = self._change(request, proj, data)
        outcome = services.submit(
            [change], actor=self.actor(request), source=SOURCE, reason=reason,
            mode=services.Mode.PROPOSE,
        )  # fmt: skip
        return Response(
            ChangeRequestOut(outcome.change_request).data, status=status.HTTP_201_CREATED
        )

    def _change(
        self, request: Request, project: Project, data: dict[str, Any]
    ) -> tuple[services.Change, str]:
        target, version, reason = data["target"], data["version"], data["reason"]
        kind = target["kind"]
        if kind == "segment":
            if "segment" not in target:
                raise _required("segment")
            obj: Any = get_object_or_404(Segment, project=project, key=target["segment"])
            spec = services.SEGMENT
        else:
            if "flag" not in target:
                raise _required("flag")
            flag = get_object_or_404(
                Flag.objects.select_related("project"), project=project, key=target["flag"]
            )
            obj, spec = flag, services.FLAG
            if kind == "archive":
                return services.Edit(
                    services.ARCHIVE, flag, {"archived": data["archived"]}, version
                ), reason
            if kind == "state":
                if "environment" not in target:
                    raise _required("environment")
                env = self.environment(request, project, target["environment"])
                obj = get_object_or_404(
                    FlagState.objects.select_related("flag", "environment__project"),
                    flag=flag, environment=env,
                )  # fmt: skip
                spec = services.STATE
        if "historyId" in data:
            return services.revert_edit(spec, obj, data["historyId"], version), reason
        patch = PATCHES[kind](data={**data["changes"], "version": version}, partial=True)
        patch.is_valid(raise_exception=True)
        changes, _, _ = s.changes_of(dict(patch.validated_data))
        return services.Edit(spec, obj, changes, version), reason


class _OneRequest(ManagementView):
    def request_of(self, request: Request, project: str, pk: int) -> ChangeRequest:
        proj = self.project(request, project)
        return get_object_or_404(
            ChangeRequest.objects.select_related("project"), project=proj, pk=pk
        )


class ChangeRequestDetail(_OneRequest):
    @extend_schema(responses=ChangeRequestOut)
    def get(self, request: Request, project: str, pk: int) -> Response:
        return Response(ChangeRequestOut(self.request_of(request, project, pk)).data)


class Decide(_OneRequest):
    ACTIONS = {
        "approve": services.approve_change,
        "reject": services.reject_change,
        "apply": services.apply_change,
    }

    @extend_schema(
        request=DecisionIn, responses=ChangeRequestOut, operation_id="change_request_decide",
        parameters=[OpenApiParameter("decision", str, OpenApiParameter.PATH,
                                     enum=["approve", "reject", "apply"])],
    )  # fmt: skip
    def post(self, request: Request, project: str, pk: int, decision: str) -> Response:
        """``approve``, ``reject`` or ``apply`` a change request, with an optional reason."""
        action = self.ACTIONS.get(decision)
        if action is None:
            return Response(
                {"detail": "Use approve, reject or apply."}, status=status.HTTP_404_NOT_FOUND
            )
        change_request = self.request_of(request, project, pk)
        if not roles.can(request.user, "view", change_request.project):
            raise PermissionDenied("You may not see this project.")
        reason = self.valid(DecisionIn(), request.data)["reason"]
        action(change_request, actor=self.actor(request), source=SOURCE, reason=reason)
        change_request.refresh_from_db()
        return Response(ChangeRequestOut(change_request).data)
