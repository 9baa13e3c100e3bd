"""The OpenFeature Remote Evaluation Protocol (OFREP), so any OFREP provider works unchanged.

- ``POST /ofrep/v1/evaluate/flags/{key}``: 200 ``{key, value, reason, variant, metadata}``;
  404 ``{key, errorCode: FLAG_NOT_FOUND}``; 400 ``{key, errorCode, errorDetails}``.
- ``POST /ofrep/v1/evaluate/flags``: 200 ``{flags: [...]}`` (successes and per-flag failures)
  with an ETag over the ruleset version and the context, and 304 on If-None-Match; 400
  ``{errorCode, errorDetails}`` for a bad request.
- ``GET /ofrep/v1/configuration``: what this server supports.

Keys come as ``Authorization: Bearer`` or ``X-API-Key``; client keys see client-visible flags
only, exactly as on /api/v1/evaluate.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from django.http import HttpResponse, HttpResponseNotModified
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from flagsite_sdk.engine import EvaluationDetails
from flagsite_sdk.engine.types import ErrorCode
from rest_framework.request import Request
from rest_framework.response import Response

from flags import evaluation
from flags.api.base import AsyncApiView
from flags.api.evaluate import etag_matches, evaluate_one
from flags.api.keys import AsyncKeyAuthentication
from flags.api.permissions import EvaluationKey, request_key
from flags.api.throttling import EvaluationThrottle

# Error codes a server may return in an evaluation failure; anything else becomes GENERAL.
_FAILURE_CODES = {"PARSE_ERROR", "TARGETING_KEY_MISSING", "INVALID_CONTEXT", "GENERAL"}


def _context(data: Any) -> dict[str, Any] | None:
    """The request's context, or None when it is not a JSON object."""
    if data is None or data == {}:
        return {}
    if not isinstance(data, dict):
        return None
    context = data.get("context", {})
    if context is None:
        return {}
    return context if isinstance(context, dict) else None


def success_json(details: EvaluationDetails, ruleset_version: int) -> dict[str, Any]:
    out: dict[str, Any] = {
        "key": details.flag_key,
        "value": details.value,
        "reason": str(details.reason),
        "metadata": {"rulesetVersion": ruleset_version},
    }
    if details.variant is not None:
        out["variant"] = details.variant
    if details.flag_version is not None:
        out["metadata"]["flagVersion"] = details.flag_version
    if details.rule_id is not None:
        out["metadata"]["ruleId"] = details.rule_id
    return out


def failure_json(details: EvaluationDetails) -> dict[str, Any]:
    code = str(details.error_code)
    if details.error_code is not ErrorCode.FLAG_NOT_FOUND and code not in _FAILURE_CODES:
        code = "GENERAL"
    out = {"key": details.flag_key, "errorCode": code}
    if details.error_message:
        out["errorDetails"] = details.error_message
    return out


class OfrepFlagView(AsyncApiView):
    authentication_classes = [AsyncKeyAuthentication]
    permission_classes = [EvaluationKey]
    throttle_classes = [EvaluationThrottle]

    @extend_schema(
        operation_id="ofrep_evaluate_flag",
        request=OpenApiTypes.OBJECT,
        responses={200: OpenApiTypes.OBJECT},
    )
    async def post(self, request: Request, key: str) -> Response:
        api_key = request_key(request)
        assert api_key is not None
        context = _context(request.data)
        if context is None:
            body = {"key": key, "errorCode": "INVALID_CONTEXT",
                    "errorDetails": "context must be a JSON object"}  # fmt: skip
            return Response(body, status=400)
        snap = await evaluation.aget_snapshot(api_key.environment_id)
        client = api_key.kind == "client"
        details = evaluate_one(snap, key, context, None, client=client)
        if details.error_code is None:
            payload = success_json(details, snap.version)
            if client:
                payload["metadata"].pop("ruleId", None)
            return Response(payload)
        status = 404 if details.error_code is ErrorCode.FLAG_NOT_FOUND else 400
        return Response(failure_json(details), status=status)


class OfrepBulkView(AsyncApiView):
    authentication_classes = [AsyncKeyAuthentication]
    permission_classes = [EvaluationKey]
    throttle_classes = [EvaluationThrottle]

    @extend_schema(
        operation_id="ofrep_evaluate_flags",
        request=OpenApiTypes.OBJECT,
        responses={200: OpenApiTypes.OBJECT, 304: None},
    )
    async def post(self, request: Request) -> HttpResponse | Response:
        api_key = request_key(request)
        assert api_key is not None
        context = _context(request.data)
        if context is None:
            body = {"errorCode": "INVALID_CONTEXT", "errorDetails": "context must be a JSON object"}
            return Response(body, status=400)
        snap = await evaluation.aget_snapshot(api_key.environment_id)
        client = api_key.kind == "client"
        # The result depends only on the ruleset version, the context and what the key may see.
        canonical = json.dumps(context, sort_keys=True, separators=(",", ":"), default=str)
        digest = hashlib.sha256(f"{api_key.kind}|{canonical}".encode()).hexdigest()[:20]
        etag = f'"{snap.version}-{digest}"'
        if etag_matches(request.headers.get("If-None-Match"), etag):
            not_modified = HttpResponseNotModified()
            not_modified["ETag"] = etag
            return not_modified
        keys = snap.client_order if client else snap.compiled.flag_keys()
        flags: list[dict[str, Any]] = []
        for flag_key in keys:
            details = snap.compiled.evaluate(flag_key, context)
            if details.error_code is None:
                item = success_json(details, snap.version)
                if client:
                    item["metadata"].pop("ruleId", None)
                flags.append(item)
            else:
                flags.append(failure_json(details))
        response = Response({"flags": flags})
        response["ETag"] = etag
        return response


class OfrepConfigurationView(AsyncApiView):
    authentication_classes = [AsyncKeyAuthentication]
    permission_classes = [EvaluationKey]

    @extend_schema(responses={200: OpenApiTypes.OBJECT})
    async def get(self, request: Request) -> Response:
        return Response(
            {
                "name": "flagsite",
                "capabilities": {
                    "cacheInvalidation": {
                        "polling": {"enabled": True, "minPollingIntervalMs": 1000}
                    },
                    "flagEvaluation": {
                        "supportedTypes": ["boolean", "string", "int", "float", "object"]
                    },
                },
            }
        )
