"""The OpenFeature Remote Evaluation Protocol (OFREP), so any OFREP provider works unchanged.

- ``POST /ofrep/v1/evaluate/flags/{key}``: 200 ``{key, value, reason, variant, metadata}``;
  404 ``{key, errorCode: FLAG_NOT_FOUND, errorDetails}``; 400 ``{key, errorCode, errorDetails}``.
- ``POST /ofrep/v1/evaluate/flags``: 200 ``{flags: [...]}`` (successes and per-flag failures)
  with an ETag, and 304 on If-None-Match; 400 ``{errorCode, errorDetails}`` for a bad request.
- ``GET /ofrep/v1/configuration``: what this server supports.

Keys come as ``Authorization: Bearer`` or ``X-API-Key``; client keys see client-visible flags
only, exactly as on /api/v1/evaluate.

What the protocol leaves to us (docs/api.md has the table):
- ``reason`` is one of the protocol's STATIC, TARGETING_MATCH, SPLIT, DISABLED, UNKNOWN.
  Flagsite's DEFAULT (no rule matched, or a fallback variant was served) has no equivalent
  there and is sent as UNKNOWN; ``metadata.flagsiteReason`` always carries the engine's reason.
- A request body that is not JSON, or nested too deep, is PARSE_ERROR; a body or context that
  is not a JSON object (``null`` included) is INVALID_CONTEXT. No body at all is an empty context.
- A rollout whose bucket-by attribute is missing is TARGETING_KEY_MISSING when that attribute
  is ``targetingKey``, INVALID_CONTEXT when it is any other attribute.
- The bulk ETag is a digest of the environment, the key's kind and the exact response: a
  change to a flag the key cannot see leaves it, and the body, as they were.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

import orjson
from django.http import HttpResponse, HttpResponseNotModified
from drf_spectacular.utils import OpenApiParameter, extend_schema
from flagsite_sdk.engine import EvaluationDetails
from flagsite_sdk.engine.types import ErrorCode, Reason
from rest_framework import exceptions
from rest_framework.request import Request
from rest_framework.response import Response

from flags import evaluation
from flags.api import errors, ofrep_schema
from flags.api.base import AsyncApiView
from flags.api.evaluate import etag_matches, evaluate_one
from flags.api.keys import AsyncKeyAuthentication
from flags.api.parsers import BodyInvalid
from flags.api.permissions import EvaluationKey, request_key
from flags.api.throttling import EvaluationThrottle

# The protocol's reasons; the engine's others (DEFAULT) are sent as UNKNOWN.
_REASONS = {
    Reason.STATIC: "STATIC",
    Reason.TARGETING_MATCH: "TARGETING_MATCH",
    Reason.SPLIT: "SPLIT",
    Reason.DISABLED: "DISABLED",
}
# Error codes a server may return in an evaluation failure; anything else becomes GENERAL.
_FAILURE_CODES = {"PARSE_ERROR", "TARGETING_KEY_MISSING", "INVALID_CONTEXT", "GENERAL"}


class InvalidContext(exceptions.ParseError):
    pass


def read_context(request: Request) -> dict[str, Any]:
    """The request's context; InvalidContext when the body or the context is not an object."""
    data = request.data
    if request.stream is None:  # no body: the protocol makes it optional
        return {}
    if not isinstance(data, dict):
        raise InvalidContext("The body must be a JSON object.")
    if "context" not in data:
        return {}
    context = data["context"]
    if not isinstance(context, dict):
        raise InvalidContext("context must be a JSON object.")
    return context


def _usable_targeting_key(context: dict[str, Any]) -> bool:
    value = context.get("targetingKey")
    return (type(value) is str and value != "") or type(value) is int


def failure_code(details: EvaluationDetails, context: dict[str, Any]) -> str:
    code = str(details.error_code)
    if details.error_code is ErrorCode.TARGETING_KEY_MISSING:
        # The engine names any missing bucket-by attribute so; the protocol keeps the name for
        # the targeting key itself.
        if _usable_targeting_key(context) or "'targetingKey'" not in (details.error_message or ""):
            return "INVALID_CONTEXT"
        return code
    if details.error_code is ErrorCode.FLAG_NOT_FOUND or code in _FAILURE_CODES:
        return code
    return "GENERAL"


def success_json(details: EvaluationDetails, *, client: bool) -> dict[str, Any]:
    metadata: dict[str, Any] = {"flagsiteReason": str(details.reason)}
    if details.flag_version is not None:
        metadata["flagVersion"] = details.flag_version
    if details.rule_id is not None and not client:
        metadata["ruleId"] = details.rule_id
    return {
        "key": details.flag_key,
        "value": details.value,
        "reason": _REASONS.get(details.reason, "UNKNOWN"),
        "variant": details.variant,
        "metadata": metadata,
    }


def failure_json(details: EvaluationDetails, context: dict[str, Any]) -> dict[str, Any]:
    return {
        "key": details.flag_key,
        "errorCode": failure_code(details, context),
        "errorDetails": details.error_message or str(details.error_code),
    }


def ofrep_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """Every error in the protocol's shape: ``{errorCode, errorDetails}`` (+ ``key``)."""
    response = errors.exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, InvalidContext):
        code = "INVALID_CONTEXT"
    elif isinstance(exc, BodyInvalid | exceptions.ParseError):
        code = "PARSE_ERROR"
    else:
        code = "GENERAL"
    detail = getattr(exc, "detail", None)
    body: dict[str, Any] = {"errorCode": code, "errorDetails": str(detail or exc)}
    key = context.get("kwargs", {}).get("key")
    if key is not None:
        body["key"] = key
    response.data = body
    return response


class OfrepView(AsyncApiView):
    authentication_classes = [AsyncKeyAuthentication]
    permission_classes = [EvaluationKey]
    throttle_classes = [EvaluationThrottle]

    def get_exception_handler(self) -> Callable[[Exception, dict[str, Any]], Response | None]:
        return ofrep_exception_handler


class OfrepFlagView(OfrepView):
    @extend_schema(
        operation_id="ofrep_evaluate_flag",
        request=ofrep_schema.EVALUATION_REQUEST,
        responses=ofrep_schema.SINGLE_RESPONSES,
        tags=["ofrep"],
    )
    async def post(self, request: Request, key: str) -> Response:
        api_key = request_key(request)
        assert api_key is not None
        context = read_context(request)
        snap = await evaluation.aget_snapshot(api_key.environment_id)
        client = api_key.kind == "client"
        details = evaluate_one(snap, key, context, None, client=client)
        if details.error_code is None:
            payload = success_json(details, client=client)
            payload["metadata"]["rulesetVersion"] = snap.version
            return Response(payload)
        status = 404 if details.error_code is ErrorCode.FLAG_NOT_FOUND else 400
        return Response(failure_json(details, context), status=status)


class OfrepBulkView(OfrepView):
    @extend_schema(
        operation_id="ofrep_evaluate_flags",
        request=ofrep_schema.EVALUATION_REQUEST,
        parameters=[
            OpenApiParameter(
                "If-None-Match", str, OpenApiParameter.HEADER, description="An ETag from before"
            )
        ],
        responses=ofrep_schema.BULK_RESPONSES,
        tags=["ofrep"],
    )
    async def post(self, request: Request) -> HttpResponse:
        api_key = request_key(request)
        assert api_key is not None
        context = read_context(request)
        snap = await evaluation.aget_snapshot(api_key.environment_id)
        client = api_key.kind == "client"
        keys = snap.client_order if client else snap.compiled.flag_keys()
        flags: list[dict[str, Any]] = []
        for flag_key in keys:
            details = snap.compiled.evaluate(flag_key, context)
            if details.error_code is None:
                flags.append(success_json(details, client=client))
            else:
                flags.append(failure_json(details, context))
        body = orjson.dumps({"flags": flags}, option=orjson.OPT_NON_STR_KEYS)
        # Only what this key receives goes into the tag, so nothing else can change it; the
        # environment and the kind keep two keys' identical answers apart.
        digest = hashlib.sha256(b"%d|%s|" % (api_key.environment_id, api_key.kind.encode()))
        digest.update(body)
        etag = f'"{api_key.environment_id}-{digest.hexdigest()[:32]}"'
        if etag_matches(request.headers.get("If-None-Match"), etag):
            response: HttpResponse = HttpResponseNotModified()
        else:
            response = HttpResponse(body, content_type="application/json")
        response["ETag"] = etag
        return response


class OfrepConfigurationView(OfrepView):
    throttle_classes = []

    @extend_schema(responses=ofrep_schema.CONFIGURATION_RESPONSES, tags=["ofrep"])
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
