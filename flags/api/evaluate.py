"""Evaluation for services and browsers, and the ruleset for SDKs; all from the in-process cache.

None of these views touch the database once the environment's snapshot and the key are cached.
"""

from __future__ import annotations

from typing import Any

from django.http import HttpResponse, HttpResponseNotModified
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from flagsite_sdk.engine import EvaluationDetails
from flagsite_sdk.engine.types import ErrorCode, Reason
from rest_framework import serializers
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request
from rest_framework.response import Response

from flags import evaluation
from flags.api.base import AsyncApiView
from flags.api.keys import AsyncKeyAuthentication
from flags.api.permissions import EvaluationKey, ServerKey, request_key
from flags.api.throttling import EvaluationThrottle, SdkThrottle
from flags.evaluation import Snapshot


def details_json(details: EvaluationDetails, *, client: bool) -> dict[str, Any]:
    """The engine's details on the wire; rule ids stay with server keys."""
    out: dict[str, Any] = {
        "flagKey": details.flag_key,
        "value": details.value,
        "variant": details.variant,
        "reason": str(details.reason),
        "errorCode": str(details.error_code) if details.error_code is not None else None,
        "errorMessage": details.error_message,
        "flagVersion": details.flag_version,
    }
    if not client:
        out["ruleId"] = details.rule_id
    return out


def not_found(flag_key: str, default: Any) -> EvaluationDetails:
    return EvaluationDetails(
        flag_key=flag_key,
        value=default,
        variant=None,
        reason=Reason.ERROR,
        error_code=ErrorCode.FLAG_NOT_FOUND,
        error_message=f"no flag {flag_key!r}",
    )


def evaluate_one(
    snap: Snapshot, flag_key: str, context: dict[str, Any], default: Any, *, client: bool
) -> EvaluationDetails:
    """Client keys see only client-visible flags: any other is reported as not found."""
    if client and flag_key not in snap.client_keys:
        return not_found(flag_key, default)
    return snap.compiled.evaluate(flag_key, context, default)


def read_context(request: Request) -> tuple[dict[str, Any], dict[str, Any]]:
    """(body, context): the body must be a JSON object, its optional ``context`` one too."""
    data = request.data
    if request.stream is None:
        raise ValidationError({"": ['Send a JSON object body, for example {"context": {}}.']})
    if not isinstance(data, dict):
        raise ValidationError({"": ["The body must be a JSON object."]})
    context = data.get("context", {})
    if not isinstance(context, dict):
        raise ValidationError({"context": ["Must be a JSON object."]})
    return data, context


_details = inline_serializer(
    "EvaluationDetails",
    {
        "flagKey": serializers.CharField(),
        "value": serializers.JSONField(),
        "variant": serializers.CharField(allow_null=True),
        "reason": serializers.CharField(),
        "errorCode": serializers.CharField(allow_null=True),
        "errorMessage": serializers.CharField(allow_null=True),
        "flagVersion": serializers.IntegerField(allow_null=True),
        "ruleId": serializers.CharField(allow_null=True, required=False),
    },
)


class EvaluateView(AsyncApiView):
    """``POST /api/v1/evaluate``: ``{"flag": key, "default": v}`` or ``{"flags": [keys]}``,
    with ``"context": {...}``."""

    authentication_classes = [AsyncKeyAuthentication]
    permission_classes = [EvaluationKey]
    throttle_classes = [EvaluationThrottle]

    @extend_schema(
        request=inline_serializer(
            "EvaluateRequest",
            {
                "flag": serializers.CharField(required=False),
                "flags": serializers.ListField(child=serializers.CharField(), required=False),
                "default": serializers.JSONField(required=False),
                "context": serializers.DictField(required=False),
            },
        ),
        responses={200: OpenApiTypes.OBJECT},
        description="One flag (`flag`) gives its details; a list (`flags`) gives "
        '`{"version": n, "flags": [details...]}`.',
    )
    async def post(self, request: Request) -> Response:
        key = request_key(request)
        assert key is not None
        data, context = read_context(request)
        client = key.kind == "client"
        snap = await evaluation.aget_snapshot(key.environment_id)
        single = data.get("flag")
        if isinstance(single, str):
            details = evaluate_one(snap, single, context, data.get("default"), client=client)
            return Response(details_json(details, client=client))
        many = data.get("flags")
        if not isinstance(many, list) or not all(isinstance(k, str) for k in many):
            raise ValidationError({"flag": ["Give a flag key in 'flag' or a list in 'flags'."]})
        out = [details_json(evaluate_one(snap, k, context, None, client=client), client=client)
               for k in many]  # fmt: skip
        return Response({"version": snap.version, "flags": out})


class EvaluateAllView(AsyncApiView):
    """``POST /api/v1/evaluate/all``: every client-visible flag for one context (bootstrap)."""

    authentication_classes = [AsyncKeyAuthentication]
    permission_classes = [EvaluationKey]
    throttle_classes = [EvaluationThrottle]

    @extend_schema(
        request=inline_serializer("BootstrapRequest", {"context": serializers.DictField()}),
        responses={
            200: inline_serializer(
                "BootstrapResponse",
                {
                    "version": serializers.IntegerField(),
                    "flags": serializers.DictField(child=_details),
                },
            )
        },
    )
    async def post(self, request: Request) -> Response:
        key = request_key(request)
        assert key is not None
        _, context = read_context(request)
        client = key.kind == "client"
        snap = await evaluation.aget_snapshot(key.environment_id)
        evaluate = snap.compiled.evaluate
        flags = {k: details_json(evaluate(k, context), client=client) for k in snap.client_order}
        return Response({"version": snap.version, "flags": flags})


def etag_matches(header: str | None, etag: str) -> bool:
    if not header:
        return False
    candidates = {tag.strip().removeprefix("W/") for tag in header.split(",")}
    return etag in candidates or "*" in candidates


class RulesetView(AsyncApiView):
    """``GET /api/v1/sdk/ruleset`` (server keys): the document, ``ETag: "<version>"``, 304."""

    authentication_classes = [AsyncKeyAuthentication]
    permission_classes = [ServerKey]
    throttle_classes = [SdkThrottle]

    @extend_schema(
        responses={
            200: OpenApiResponse(OpenApiTypes.OBJECT, description="The ruleset document."),
            304: OpenApiResponse(description="Not modified since the ETag given."),
        }
    )
    async def get(self, request: Request) -> HttpResponse:
        key = request_key(request)
        assert key is not None
        snap = await evaluation.aget_snapshot(key.environment_id)
        etag = f'"{snap.version}"'
        if etag_matches(request.headers.get("If-None-Match"), etag):
            response: HttpResponse = HttpResponseNotModified()
        else:
            response = HttpResponse(snap.body, content_type="application/json")
        response["ETag"] = etag
        response["Cache-Control"] = "no-cache"
        return response
