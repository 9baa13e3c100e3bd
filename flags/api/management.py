"""Management: projects' environments, flags, flag states (kill, history, revert) and segments.

Every write goes through flags.services, the same functions the admin calls: validated by the
engine, versioned, audited (source "api") and role-checked. A management key acts as the user
who created it, within its own project; environment-bound endpoints accept it only for its own
environment. Reads check the "view" role.
"""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.exceptions import PermissionDenied
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.serializers import Serializer

from flags import roles, services
from flags.api import serializers as s
from flags.api.base import ApiView
from flags.api.pagination import Pagination
from flags.api.permissions import ManagementAccess, request_key
from flags.api.throttling import ManagementThrottle
from flags.models import Environment, Flag, FlagState, Project, Segment
from flags.preview import describe_effect, impacts, sentence

SOURCE = services.Source.API
DRY_RUN = OpenApiParameter(
    "dryRun", bool, description="Only preview: what the change would alter, per environment."
)
VERSION = OpenApiParameter(
    "version", int, required=True, description="The version you saw; 409 if it changed since."
)


def preview_body(outcome: services.Outcome) -> dict[str, Any]:
    environments = [describe_effect(e) for e in outcome.effects]
    return {
        "dryRun": True,
        "summary": sentence(environments),
        "needsApproval": any(e.needs_approval for e in outcome.effects),
        "environments": environments,
        # Per flag and environment: {environment, flag, changed, of, sampled, note, text};
        # "changed" is null where exposures cannot tell (the note says why).
        "impact": impacts(environments),
    }


class ManagementView(ApiView):
    permission_classes = [ManagementAccess]
    throttle_classes = [ManagementThrottle]

    def project(self, request: Request, project_key: str) -> Project:
        project = get_object_or_404(Project, key=project_key)
        key = request_key(request)
        if key is not None and key.project_id != project.pk:
            raise PermissionDenied("This API key belongs to another project.")
        if not roles.can(request.user, "view", project):
            raise PermissionDenied(f"You may not view {project}.")
        return project

    def environment(self, request: Request, project: Project, env_key: str) -> Environment:
        env = get_object_or_404(
            Environment.objects.select_related("project"), project=project, key=env_key
        )
        key = request_key(request)
        if key is not None and key.environment_id != env.pk:
            raise PermissionDenied(
                f"This API key is scoped to environment {key.environment_key!r}, not {env.key!r}."
            )
        return env

    def actor(self, request: Request) -> services.Actor:
        """The signed-in user, or a management key's creator narrowed to the key's environment:
        a key may only make changes whose effect stays in its own environment."""
        key = request_key(request)
        scope = frozenset({key.environment_id}) if key is not None else None
        return services.Actor(user=request.user, environments=scope)  # type: ignore[arg-type]

    def submit(
        self, request: Request, change: services.Change, reason: str
    ) -> Response | services.Outcome:
        """Runs one change; a preview response for ``?dryRun=true``, else the outcome."""
        dry = s.query_bool(request.query_params, "dryRun")
        mode = services.Mode.DRY_RUN if dry else services.Mode.APPLY
        try:
            outcome = services.submit(
                [change], actor=self.actor(request), source=SOURCE, reason=reason, mode=mode
            )
        except services.ApprovalRequired as exc:
            url = f"/api/v1/projects/{change_project_key(change)}/change-requests"
            return Response(
                {
                    "detail": f"{exc} POST the same change to {url} to propose it.",
                    "approvalRequired": True,
                    "changeRequests": url,
                },
                status=status.HTTP_409_CONFLICT,
            )
        return Response(preview_body(outcome)) if dry else outcome

    def version_param(self, request: Request) -> int:
        raw = request.query_params.get("version")
        if raw is None or not str(raw).isdigit():
            raise services.ChangeRejected(
                [services.FieldError("version", "Give the version you saw (an integer).")]
            )
        return int(raw)

    def valid(self, serializer: Serializer[Any], data: Any) -> dict[str, Any]:
        serializer.initial_data = data
        serializer.is_valid(raise_exception=True)
        return dict(serializer.validated_data)

    def page(
        self, request: Request, queryset: QuerySet[Any], out: type[Serializer[Any]]
    ) -> Response:
        paginator = Pagination()
        rows = paginator.paginate_queryset(queryset, request, view=self)
        return paginator.get_paginated_response(out(rows, many=True).data)


def change_project_key(change: services.Change) -> str:
    return str(Project.objects.get(pk=change.project_id).key)


class FlagList(ManagementView):
    @extend_schema(responses=s.FlagOut(many=True), parameters=s.FLAG_FILTERS)
    def get(self, request: Request, project: str) -> Response:
        """Flags of the project; filters: archived, kind, tag, clientVisible, search."""
        proj = self.project(request, project)
        flags = Flag.objects.filter(project=proj).select_related("project").order_by("key")
        params = request.query_params
        flags = flags.filter(archived=s.query_bool(params, "archived"))
        if "kind" in params:
            flags = flags.filter(kind=s.query_choice(params, "kind", Flag.Kind.values))
        if "tag" in params:
            flags = flags.filter(tags__contains=[params["tag"]])
        if "clientVisible" in params:
            flags = flags.filter(client_visible=s.query_bool(params, "clientVisible"))
        if "search" in params:
            flags = flags.filter(key__icontains=params["search"]) | flags.filter(
                name__icontains=params["search"]
            )
        return self.page(request, flags, s.FlagOut)

    @extend_schema(request=s.FlagIn, responses={201: s.FlagOut})
    def post(self, request: Request, project: str) -> Response:
        proj = self.project(request, project)
        data, reason, _ = s.changes_of(self.valid(s.FlagIn(), request.data))
        flag = services.create_flag(
            proj, data=data, actor=request.user, source=SOURCE, reason=reason
        )
        return Response(s.FlagOut(flag).data, status=status.HTTP_201_CREATED)


class FlagDetail(ManagementView):
    def flag(self, request: Request, project: str, key: str) -> Flag:
        proj = self.project(request, project)
        return get_object_or_404(Flag.objects.select_related("project"), project=proj, key=key)

    @extend_schema(responses=s.FlagOut)
    def get(self, request: Request, project: str, key: str) -> Response:
        return Response(s.FlagOut(self.flag(request, project, key)).data)

    @extend_schema(request=s.FlagPatch, responses=s.FlagOut, parameters=[DRY_RUN])
    def patch(self, request: Request, project: str, key: str) -> Response:
        flag = self.flag(request, project, key)
        changes, reason, version = s.changes_of(self.valid(s.FlagPatch(partial=True), request.data))
        if version is None:
            return Response(
                {"errors": [{"path": "version", "message": "This field is required."}]},
                status=status.HTTP_400_BAD_REQUEST,
            )
        edit = services.Edit(services.FLAG, flag, changes, version)
        done = self.submit(request, edit, reason)
        return done if isinstance(done, Response) else Response(s.FlagOut(edit.target).data)

    @extend_schema(
        parameters=[
            VERSION,
            DRY_RUN,
            OpenApiParameter("reason", str, description="Why (required in production)"),
        ],
        responses={200: s.FlagOut},
    )
    def delete(self, request: Request, project: str, key: str) -> Response:
        """Archives the flag (it leaves every ruleset); history is kept."""
        flag = self.flag(request, project, key)
        reason = s.query_reason(request.query_params)
        edit = services.archive_edit(flag, True, self.version_param(request))
        if edit is None:
            return Response(s.FlagOut(flag).data)
        done = self.submit(request, edit, reason)
        return done if isinstance(done, Response) else Response(s.FlagOut(edit.target).data)


class StateView(ManagementView):
    def state(self, request: Request, project: str, key: str, env: str) -> FlagState:
        proj = self.project(request, project)
        environment = self.environment(request, proj, env)
        state = get_object_or_404(
            FlagState.objects.select_related("flag", "environment__project"),
            flag__project=proj, flag__key=key, environment=environment,
        )  # fmt: skip
        if not roles.can(request.user, "view", state):
            raise PermissionDenied(f"You may not view flags in {environment}.")
        return state


class StateDetail(StateView):
    @extend_schema(responses=s.StateOut)
    def get(self, request: Request, project: str, key: str, env: str) -> Response:
        return Response(s.StateOut(self.state(request, project, key, env)).data)

    @extend_schema(request=s.StatePatch, responses=s.StateOut, parameters=[DRY_RUN])
    def patch(self, request: Request, project: str, key: str, env: str) -> Response:
        state = self.state(request, project, key, env)
        changes, reason, version = s.changes_of(self.valid(s.StatePatch(), request.data))
        edit = services.Edit(services.STATE, state, changes, version)
        done = self.submit(request, edit, reason)
        return done if isinstance(done, Response) else Response(s.StateOut(edit.target).data)


class StateList(ManagementView):
    @extend_schema(responses=s.StateOut(many=True), parameters=s.STATE_FILTERS)
    def get(self, request: Request, project: str, env: str) -> Response:
        """Every flag's state in one environment; filter: enabled."""
        proj = self.project(request, project)
        environment = self.environment(request, proj, env)
        if not roles.can(request.user, "view", FlagState(environment=environment)):
            raise PermissionDenied(f"You may not view flags in {environment}.")
        states = FlagState.objects.filter(environment=environment, flag__archived=False)
        if "enabled" in request.query_params:
            states = states.filter(enabled=s.query_bool(request.query_params, "enabled"))
        states = states.select_related("flag", "environment").order_by("flag__key")
        return self.page(request, states, s.StateOut)


class Kill(StateView):
    @extend_schema(request=s.KillIn, responses=s.StateOut)
    def post(self, request: Request, project: str, key: str, env: str) -> Response:
        """The kill switch: off at once, no version check, no approval step."""
        state = self.state(request, project, key, env)
        reason = self.valid(s.KillIn(), request.data)["reason"]
        state = services.kill_flag(state, actor=self.actor(request), source=SOURCE, reason=reason)
        return Response(s.StateOut(state).data)


class Serve(StateView):
    @extend_schema(request=s.ServeIn, responses=s.StateOut)
    def post(self, request: Request, project: str, key: str, env: str) -> Response:
        """Emergency: serve one variant to everyone in this environment now (ops and
        kill-switch flags may be turned on this way; any flag may be turned off). No version
        check and no approval step; a reason is required, and the approvers are notified."""
        state = self.state(request, project, key, env)
        data = self.valid(s.ServeIn(), request.data)
        state = services.serve_now(
            state, variant=data["variant"], actor=self.actor(request), source=SOURCE,
            reason=data["reason"],
        )  # fmt: skip
        return Response(s.StateOut(state).data)


class History(StateView):
    @extend_schema(responses=s.HistoryOut(many=True))
    def get(self, request: Request, project: str, key: str, env: str) -> Response:
        """Every recorded version of the flag state, newest first (historyId is for revert)."""
        state = self.state(request, project, key, env)
        records = FlagState.history.filter(id=state.pk).select_related("history_user")
        records = records.order_by("-history_date", "-history_id")
        paginator = Pagination()
        rows = paginator.paginate_queryset(records, request, view=self) or []
        out = [
            {
                "historyId": r.history_id,
                "version": r.version,
                "at": r.history_date.isoformat(),
                "by": getattr(r.history_user, "username", None),
                "source": r.history_source,
                "reason": r.history_change_reason or "",
                "enabled": r.enabled,
                "offVariant": r.off_variant,
                "rules": r.rules,
                "defaultServe": r.default_serve,
                "prerequisites": r.prerequisites,
            }
            for r in rows
        ]
        return paginator.get_paginated_response(out)


class Revert(StateView):
    @extend_schema(request=s.RevertIn, responses=s.StateOut, parameters=[DRY_RUN])
    def post(self, request: Request, project: str, key: str, env: str) -> Response:
        """Restores the targeting of an earlier version (from history) as a new version."""
        state = self.state(request, project, key, env)
        data = self.valid(s.RevertIn(), request.data)
        edit = services.revert_edit(services.STATE, state, data["history_id"], data.get("version"))
        done = self.submit(request, edit, data["reason"])
        return done if isinstance(done, Response) else Response(s.StateOut(edit.target).data)


class SegmentList(ManagementView):
    @extend_schema(responses=s.SegmentOut(many=True), parameters=s.SEARCH_FILTER)
    def get(self, request: Request, project: str) -> Response:
        proj = self.project(request, project)
        segments = Segment.objects.filter(project=proj).order_by("key")
        if "search" in request.query_params:
            segments = segments.filter(key__icontains=request.query_params["search"])
        return self.page(request, segments, s.SegmentOut)

    @extend_schema(request=s.SegmentIn, responses={201: s.SegmentOut})
    def post(self, request: Request, project: str) -> Response:
        proj = self.project(request, project)
        data, reason, _ = s.changes_of(self.valid(s.SegmentIn(), request.data))
        segment = services.create_segment(
            proj, data=data, actor=request.user, source=SOURCE, reason=reason
        )
        return Response(s.SegmentOut(segment).data, status=status.HTTP_201_CREATED)


class SegmentDetail(ManagementView):
    def segment(self, request: Request, project: str, key: str) -> Segment:
        proj = self.project(request, project)
        return get_object_or_404(Segment, project=proj, key=key)

    @extend_schema(responses=s.SegmentOut)
    def get(self, request: Request, project: str, key: str) -> Response:
        return Response(s.SegmentOut(self.segment(request, project, key)).data)

    @extend_schema(request=s.SegmentPatch, responses=s.SegmentOut, parameters=[DRY_RUN])
    def patch(self, request: Request, project: str, key: str) -> Response:
        segment = self.segment(request, project, key)
        changes, reason, version = s.changes_of(
            self.valid(s.SegmentPatch(partial=True), request.data)
        )
        if version is None:
            return Response(
                {"errors": [{"path": "version", "message": "This field is required."}]},
                status=status.HTTP_400_BAD_REQUEST,
            )
        edit = services.Edit(services.SEGMENT, segment, changes, version)
        done = self.submit(request, edit, reason)
        return done if isinstance(done, Response) else Response(s.SegmentOut(edit.target).data)

    @extend_schema(
        parameters=[
            VERSION,
            OpenApiParameter("reason", str, description="Why (required in production)"),
        ],
        responses={204: None},
    )
    def delete(self, request: Request, project: str, key: str) -> Response:
        segment = self.segment(request, project, key)
        reason = s.query_reason(request.query_params)
        change = services.DeleteSegment(segment, self.version_param(request))
        done = self.submit(request, change, reason)
        if isinstance(done, Response):
            return done
        return Response(status=status.HTTP_204_NO_CONTENT)


class EnvironmentList(ManagementView):
    @extend_schema(responses=s.EnvironmentOut(many=True))
    def get(self, request: Request, project: str) -> Response:
        proj = self.project(request, project)
        envs = Environment.objects.filter(project=proj).select_related("ruleset")
        return self.page(request, envs.order_by("sort_order", "key"), s.EnvironmentOut)

    @extend_schema(request=s.EnvironmentIn, responses={201: s.EnvironmentOut})
    def post(self, request: Request, project: str) -> Response:
        proj = self.project(request, project)
        data, reason, _ = s.changes_of(self.valid(s.EnvironmentIn(), request.data))
        env = services.create_environment(
            proj, data=data, actor=request.user, source=SOURCE, reason=reason
        )
        return Response(s.EnvironmentOut(env).data, status=status.HTTP_201_CREATED)


class EnvironmentDetail(ManagementView):
    @extend_schema(responses=s.EnvironmentOut)
    def get(self, request: Request, project: str, env: str) -> Response:
        proj = self.project(request, project)
        return Response(s.EnvironmentOut(self.environment(request, proj, env)).data)

    @extend_schema(request=s.EnvironmentPatch, responses=s.EnvironmentOut)
    def patch(self, request: Request, project: str, env: str) -> Response:
        proj = self.project(request, project)
        environment = self.environment(request, proj, env)
        changes, reason, version = s.changes_of(
            self.valid(s.EnvironmentPatch(partial=True), request.data)
        )
        if version is None:
            return Response(
                {"errors": [{"path": "version", "message": "This field is required."}]},
                status=status.HTTP_400_BAD_REQUEST,
            )
        environment = services.update_environment(
            environment, changes=changes, expected_version=version, actor=request.user,
            source=SOURCE, reason=reason,
        )  # fmt: skip
        return Response(s.EnvironmentOut(environment).data)
