"""OpenAPI shapes of the OFREP endpoints (flags.api.ofrep), after the protocol's own document."""

# ruff: noqa: N815 - the protocol's camelCase
from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiResponse, inline_serializer
from rest_framework import serializers

REASONS = ["STATIC", "TARGETING_MATCH", "SPLIT", "DISABLED", "UNKNOWN"]
FAILURE_CODES = ["PARSE_ERROR", "TARGETING_KEY_MISSING", "INVALID_CONTEXT", "GENERAL"]
NOT_FOUND_CODES = ["FLAG_NOT_FOUND"]
GENERAL_CODES = ["GENERAL"]
ITEM_CODES = [*FAILURE_CODES, "FLAG_NOT_FOUND"]

EVALUATION_REQUEST = inline_serializer(
    "OfrepEvaluationRequest",
    {"context": serializers.DictField(required=False, help_text="The evaluation context.")},
)

_metadata = serializers.DictField(
    child=serializers.JSONField(),
    help_text="flagsiteReason (the engine's reason), flagVersion, ruleId (server keys), "
    "rulesetVersion (single evaluations).",
)

SUCCESS = inline_serializer(
    "OfrepEvaluationSuccess",
    {
        "key": serializers.CharField(),
        "value": serializers.JSONField(),
        "reason": serializers.ChoiceField(choices=REASONS),
        "variant": serializers.CharField(),
        "metadata": _metadata,
    },
)

FAILURE = inline_serializer(
    "OfrepEvaluationFailure",
    {
        "key": serializers.CharField(),
        "errorCode": serializers.ChoiceField(choices=FAILURE_CODES),
        "errorDetails": serializers.CharField(),
    },
)

NOT_FOUND = inline_serializer(
    "OfrepFlagNotFound",
    {
        "key": serializers.CharField(),
        "errorCode": serializers.ChoiceField(choices=NOT_FOUND_CODES),
        "errorDetails": serializers.CharField(),
    },
)

BULK_FAILURE = inline_serializer(
    "OfrepBulkFailure",
    {
        "errorCode": serializers.ChoiceField(choices=FAILURE_CODES),
        "errorDetails": serializers.CharField(),
    },
)

GENERAL = inline_serializer(
    "OfrepGeneralError",
    {
        "errorCode": serializers.ChoiceField(choices=GENERAL_CODES),
        "errorDetails": serializers.CharField(),
        "key": serializers.CharField(required=False),
    },
)


class OfrepBulkItem(serializers.Serializer[Any]):
    """One flag of a bulk answer: a success, or a failure with errorCode."""

    key = serializers.CharField()
    value = serializers.JSONField(required=False)
    reason = serializers.ChoiceField(choices=REASONS, required=False)
    variant = serializers.CharField(required=False)
    metadata = _metadata
    errorCode = serializers.ChoiceField(choices=ITEM_CODES, required=False)
    errorDetails = serializers.CharField(required=False)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["metadata"].required = False


BULK_SUCCESS = inline_serializer(
    "OfrepBulkSuccess", {"flags": serializers.ListField(child=OfrepBulkItem())}
)


def _general(description: str) -> OpenApiResponse:
    return OpenApiResponse(GENERAL, description=description)


_COMMON: dict[int, Any] = {
    401: _general("No API key, or an unknown, revoked or expired one."),
    403: _general("This kind of key may not evaluate (management keys)."),
    413: _general("The body is larger than the limit."),
    415: _general("The body is not application/json."),
    429: _general("Rate limit reached; Retry-After says when to try again."),
}

SINGLE_RESPONSES: dict[int, Any] = {
    200: SUCCESS,
    400: OpenApiResponse(FAILURE, description="Bad request or context, or a failed evaluation."),
    404: OpenApiResponse(NOT_FOUND, description="No such flag (or not visible to this key)."),
    **_COMMON,
}

BULK_RESPONSES: dict[int, Any] = {
    200: BULK_SUCCESS,
    304: OpenApiResponse(description="Unchanged since the ETag in If-None-Match."),
    400: OpenApiResponse(BULK_FAILURE, description="The body or context is not acceptable."),
    **_COMMON,
}

CONFIGURATION_RESPONSES: dict[int, Any] = {
    200: inline_serializer(
        "OfrepConfiguration",
        {"name": serializers.CharField(), "capabilities": serializers.DictField()},
    ),
    400: OpenApiResponse(BULK_FAILURE, description="A NUL character in the query."),
    401: _COMMON[401],
    403: _COMMON[403],
}
