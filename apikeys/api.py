"""API keys over the management API: list, issue and revoke, through apikeys.services.

Only the project's owners (and superusers). The raw key is in the body of the issuing response
and nowhere else: never listed, never logged, and that response may not be cached.

A management key acts as its creator within its own environment; it may list, issue and
revoke the server and client keys of that environment, but never issue a management key: a
leaked key must not be able to mint its own successor.
"""

# ruff: noqa: N815 - the API speaks camelCase
from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.shortcuts import get_object_or_404
from django.utils.cache import add_never_cache_headers
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import PermissionDenied
from rest_framework.request import Request
from rest_framework.response import Response

from apikeys import services
from apikeys.models import ApiKey
from flags import roles
from flags.api import serializers as s
from flags.api.management import SOURCE, ManagementView
from flags.api.permissions import request_key
from flags.errors import ChangeRejected, FieldError
from flags.models import Environment


class KeyOut(serializers.ModelSerializer[ApiKey]):
    environment = serializers.CharField(source="environment.key")
    createdBy = serializers.CharField(source="created_by.username", default=None, allow_null=True)
    createdAt = serializers.DateTimeField(source="created_at")
    lastUsedAt = serializers.DateTimeField(source="last_used_at", allow_null=True)
    revokedAt = serializers.DateTimeField(source="revoked_at", allow_null=True)
    revokedBy = serializers.CharField(source="revoked_by.username", default=None, allow_null=True)

    class Meta:
        model = ApiKey
        fields = ["id", "name", "kind", "prefix", "environment", "createdBy", "createdAt",
                  "lastUsedAt", "revokedAt", "revokedBy"]  # fmt: skip


class IssuedOut(KeyOut):
    key = serializers.SerializerMethodField(
        help_text="The secret, shown in this response only: store it now."
    )

    class Meta(KeyOut.Meta):
        fields = [*KeyOut.Meta.fields, "key"]

    def get_key(self, key: ApiKey) -> str:
        return str(self.context["raw"])


class KeyIn(serializers.Serializer[Any]):
    kind = serializers.ChoiceField(choices=ApiKey.Kind.choices)
    name = s.StrictCharField(max_length=200, help_text="Who uses the key, e.g. 'checkout SDK'.")
    reason = s.reason_field(required=True, help_text="Why the key is issued (audited).")


class RevokeIn(serializers.Serializer[Any]):
    reason = s.reason_field(required=True, help_text="Why the key is revoked (audited).")


def _rejected(exc: ValidationError) -> ChangeRejected:
    if hasattr(exc, "error_dict"):
        return ChangeRejected(
            [FieldError(f, m) for f, messages in exc.message_dict.items() for m in messages]
        )
    return ChangeRejected([FieldError("", m) for m in exc.messages])


class KeyView(ManagementView):
    def owned(self, request: Request, project: str, env: str) -> Environment:
        environment = self.environment(request, self.project(request, project), env)
        if not roles.can(request.user, "manage", environment):
            raise PermissionDenied(f"Only the owners of {environment.project.key} manage keys.")
        return environment


class KeyList(KeyView):
    @extend_schema(operation_id="api_keys_list", responses=KeyOut(many=True))
    def get(self, request: Request, project: str, env: str) -> Response:
        """The environment's keys, revoked ones included (prefix only, never the secret)."""
        environment = self.owned(request, project, env)
        keys = ApiKey.objects.filter(environment=environment).select_related(
            "environment", "created_by", "revoked_by"
        )
        return self.page(request, keys.order_by("pk"), KeyOut)

    @extend_schema(operation_id="api_key_issue", request=KeyIn, responses={201: IssuedOut})
    def post(self, request: Request, project: str, env: str) -> Response:
        """Issues a key; the response carries the secret, once."""
        environment = self.owned(request, project, env)
        data = self.valid(KeyIn(), request.data)
        if request_key(request) is not None and data["kind"] == ApiKey.Kind.MANAGEMENT:
            raise PermissionDenied("An API key cannot issue a management key; sign in to.")
        try:
            key, raw = services.issue(
                environment, kind=data["kind"], name=data["name"], actor=request.user,
                reason=data["reason"], source=SOURCE,
            )  # fmt: skip
        except ValidationError as exc:
            raise _rejected(exc) from exc
        response = Response(IssuedOut(key, context={"raw": raw}).data, status=201)
        add_never_cache_headers(response)
        return response


class KeyRevoke(KeyView):
    @extend_schema(operation_id="api_key_revoke", request=RevokeIn, responses=KeyOut)
    def post(self, request: Request, project: str, env: str, pk: int) -> Response:
        """Revokes the key everywhere at once; revoking a revoked key changes nothing."""
        environment = self.owned(request, project, env)
        key = get_object_or_404(ApiKey.objects.select_related("environment"),
                                environment=environment, pk=pk)  # fmt: skip
        reason = self.valid(RevokeIn(), request.data)["reason"]
        try:
            revoked = services.revoke(key, actor=request.user, reason=reason, source=SOURCE)
        except ValidationError as exc:
            raise _rejected(exc) from exc
        return Response(KeyOut(revoked).data, status=status.HTTP_200_OK)
