"""Role grants over the API: list, grant, change and revoke, through flags.grants.

Only the project's owners (and superusers) may, and only signed in: an API key is scoped to
one environment while a role reaches the whole project, so no key changes who has access.
Every write needs a reason (audited, source "api"); changing or revoking names the version
of the grant the caller saw (409 if it moved on).
"""

# ruff: noqa: N815 - the API speaks camelCase
from __future__ import annotations

from typing import Any

from django.contrib.auth.models import User
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import PermissionDenied
from rest_framework.request import Request
from rest_framework.response import Response

from flags import grants, roles
from flags.api import serializers as s
from flags.api.management import SOURCE, VERSION, ManagementView
from flags.api.permissions import request_key
from flags.errors import ChangeRejected, FieldError
from flags.models import Environment, Project, RoleGrant

ROLE_CHOICES = RoleGrant.Role.choices


class GrantOut(serializers.ModelSerializer[RoleGrant]):
    user = serializers.CharField(source="user.username")
    environments = serializers.SerializerMethodField(
        help_text="Environment keys the role is narrowed to; empty: every environment."
    )
    version = serializers.SerializerMethodField(help_text="Give it back to change or revoke.")
    createdAt = serializers.DateTimeField(source="created_at")

    class Meta:
        model = RoleGrant
        fields = ["id", "user", "role", "environments", "version", "createdAt"]

    def get_environments(self, grant: RoleGrant) -> list[str]:
        return sorted(e.key for e in grant.environments.all())

    def get_version(self, grant: RoleGrant) -> int:
        return grants.version_of(grant)


class GrantIn(serializers.Serializer[Any]):
    user = s.StrictCharField(max_length=150, help_text="The username of the person.")
    role = serializers.ChoiceField(choices=ROLE_CHOICES)
    environments = serializers.ListField(
        child=s.StrictCharField(max_length=100), required=False, default=list,
        help_text="Environment keys to narrow the role to; empty or absent: every environment.",
    )  # fmt: skip
    reason = s.reason_field(required=True, help_text="Who gets access and why (audited).")


class GrantPatch(serializers.Serializer[Any]):
    role = serializers.ChoiceField(choices=ROLE_CHOICES, required=False)
    environments = serializers.ListField(child=s.StrictCharField(max_length=100), required=False)
    version = serializers.IntegerField(help_text="The version you saw; 409 if it changed since.")
    reason = s.reason_field(required=True, help_text="Why the access changes (audited).")


class GrantView(ManagementView):
    def managed(self, request: Request, project: str) -> Project:
        if request_key(request) is not None:
            raise PermissionDenied(
                "Role grants are changed by a signed-in owner, not by an API key: a key is "
                "scoped to one environment, a role reaches the whole project."
            )
        proj = self.project(request, project)
        if not roles.can(request.user, "manage", proj):
            raise PermissionDenied(f"Only the owners of {proj.key} may manage its roles.")
        return proj

    def environments_of(self, project: Project, keys: list[str]) -> list[Environment]:
        found = {e.key: e for e in Environment.objects.filter(project=project, key__in=keys)}
        unknown = [k for k in keys if k not in found]
        if unknown:
            raise ChangeRejected(
                [FieldError("environments", f"{project.key} has no environment {unknown[0]!r}.")]
            )
        return [found[k] for k in keys]

    def grant_of(self, request: Request, project: str, pk: int) -> RoleGrant:
        proj = self.managed(request, project)
        return get_object_or_404(
            RoleGrant.objects.select_related("user", "project"), project=proj, pk=pk
        )


class GrantList(GrantView):
    @extend_schema(operation_id="role_grants_list", responses=GrantOut(many=True))
    def get(self, request: Request, project: str) -> Response:
        """Who has which role in the project (owners only)."""
        proj = self.managed(request, project)
        rows = RoleGrant.objects.filter(project=proj).select_related("user", "project")
        return self.page(request, rows.prefetch_related("environments").order_by("pk"), GrantOut)

    @extend_schema(operation_id="role_grant_create", request=GrantIn, responses={201: GrantOut})
    def post(self, request: Request, project: str) -> Response:
        """Gives a person a role. Someone who has one already: 409 naming their grant (change
        it with PATCH instead, so nobody's access changes by accident)."""
        proj = self.managed(request, project)
        data = self.valid(GrantIn(), request.data)
        user = User.objects.filter(username=data["user"], is_active=True).first()
        if user is None:
            raise ChangeRejected([FieldError("user", f"No active user {data['user']!r}.")])
        envs = self.environments_of(proj, data["environments"])
        existing = RoleGrant.objects.filter(user=user, project=proj).first()
        if existing is not None:
            url = f"/api/v1/projects/{proj.key}/role-grants/{existing.pk}"
            return Response(
                {
                    "detail": f"{user.username} already has the role {existing.role} here: "
                    f"PATCH {url} to change it.",
                    "currentVersion": grants.version_of(existing),
                },
                status=status.HTTP_409_CONFLICT,
            )
        created = grants.grant(
            user, proj, data["role"], envs, actor=request.user, reason=data["reason"],
            source=SOURCE,
        )  # fmt: skip
        return Response(GrantOut(created).data, status=status.HTTP_201_CREATED)


class GrantDetail(GrantView):
    @extend_schema(operation_id="role_grant_retrieve", responses=GrantOut)
    def get(self, request: Request, project: str, pk: int) -> Response:
        return Response(GrantOut(self.grant_of(request, project, pk)).data)

    @extend_schema(operation_id="role_grant_update", request=GrantPatch, responses=GrantOut)
    def patch(self, request: Request, project: str, pk: int) -> Response:
        """Changes the role or the environments (never the person: revoke and grant anew)."""
        grant = self.grant_of(request, project, pk)
        data = self.valid(GrantPatch(), request.data)
        if "role" not in data and "environments" not in data:
            raise ChangeRejected([FieldError("role", "Give a role or environments to change.")])
        if "environments" in data:
            envs = self.environments_of(grant.project, data["environments"])
        else:
            envs = list(grant.environments.all())
        changed = grants.change(
            grant, role=data.get("role", grant.role), environments=envs, actor=request.user,
            reason=data["reason"], source=SOURCE, expected_version=data["version"],
        )  # fmt: skip
        return Response(GrantOut(changed).data)

    @extend_schema(
        operation_id="role_grant_revoke",
        parameters=[VERSION, OpenApiParameter("reason", str, required=True, description="Why.")],
        responses={204: None},
    )
    def delete(self, request: Request, project: str, pk: int) -> Response:
        """Revokes the grant and every permission it gave; the history keeps it."""
        grant = self.grant_of(request, project, pk)
        reason = s.query_reason(request.query_params)
        grants.revoke(
            grant, actor=request.user, reason=reason, source=SOURCE,
            expected_version=self.version_param(request),
        )  # fmt: skip
        return Response(status=status.HTTP_204_NO_CONTENT)
