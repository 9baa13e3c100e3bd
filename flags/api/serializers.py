"""Management payloads. Field names are the ruleset document's (camelCase), so an error path
from the engine's validator (``rules[0].conditions[1].operator``) names a request field as is.
"""

# ruff: noqa: N815 - the API speaks the ruleset document's camelCase
from __future__ import annotations

from typing import Any

from django.core.validators import RegexValidator
from drf_spectacular.utils import OpenApiParameter
from flagsite_sdk.engine.keys import KEY_PATTERN, KEY_RULE
from rest_framework import serializers

from flags.history import REASON_MAX_LENGTH
from flags.models import KEY_VALIDATOR, Environment, Flag, FlagState, Segment

# API name -> model field, for the fields whose names differ.
API_TO_MODEL = {
    "valueType": "value_type",
    "clientVisible": "client_visible",
    "expiresAt": "expires_at",
    "offVariant": "off_variant",
    "defaultServe": "default_serve",
    "keyAttribute": "key_attribute",
    "sortOrder": "sort_order",
    "isProduction": "is_production",
    "requiresApproval": "requires_approval",
    "corsOrigins": "cors_origins",
}
MODEL_TO_API = {model: api for api, model in API_TO_MODEL.items()}


class StrictCharField(serializers.CharField):
    """A CharField that takes only JSON strings (DRF's turns 12 or 1.5 into text), and whose
    length limit holds for the string as sent, as the OpenAPI document says (DRF measures it
    after trimming the whitespace)."""

    default_error_messages = {"invalid": "Must be a string."}

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("invalid")
        if self.max_length is not None and len(data) > self.max_length:
            self.fail("max_length", max_length=self.max_length)
        return str(super().to_internal_value(data))


def reason_field(*, required: bool = False, help_text: str = "") -> StrictCharField:
    """The one definition of a reason: a string of at most REASON_MAX_LENGTH characters."""
    text = help_text or "Why (recorded in the history); required for changes to production."
    extra: dict[str, Any] = {} if required else {"allow_blank": True, "default": ""}
    return StrictCharField(required=required, max_length=REASON_MAX_LENGTH, help_text=text, **extra)


class _KeyValidator(RegexValidator):
    """The engine's key rule (flags.models.validate_key); a RegexValidator only so that the
    OpenAPI document shows the pattern."""

    def __init__(self) -> None:
        super().__init__(KEY_PATTERN, KEY_RULE)

    def __call__(self, value: Any) -> None:
        KEY_VALIDATOR(value)


def key_field(*, required: bool = True) -> StrictCharField:
    """A flag, segment or environment key: the engine's rule, within the 100-character column."""
    return StrictCharField(max_length=100, required=required, validators=[_KeyValidator()])


def api_path(path: str) -> str:
    """A service error path in API names (model field names become camelCase)."""
    head, sep, rest = path.partition(".")
    name, bracket, index = head.partition("[")
    return MODEL_TO_API.get(name, name) + bracket + index + sep + rest


class Versioned(serializers.Serializer[Any]):
    """A change to a versioned object: ``version`` is required, and something must change."""

    version = serializers.IntegerField(
        required=True, help_text="The version you edited; 409 if it changed since."
    )
    reason = reason_field()

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        problems: dict[str, list[str]] = {}
        if "version" not in attrs:  # partial serializers do not enforce required fields
            problems["version"] = ["This field is required."]
        if not set(attrs) - {"version", "reason"}:
            sent = self.initial_data if isinstance(self.initial_data, dict) else {}
            unknown = sorted(str(name) for name in sent if name not in self.fields)
            for name in unknown:
                problems[name] = ["Unknown field; nothing to change."]
            if not unknown:
                problems["non_field_errors"] = ["Give at least one field to change."]
        if problems:
            raise serializers.ValidationError(problems)
        return attrs


class FlagOut(serializers.ModelSerializer[Flag]):
    valueType = serializers.CharField(source="value_type")
    clientVisible = serializers.BooleanField(source="client_visible")
    expiresAt = serializers.DateField(source="expires_at", allow_null=True)
    project = serializers.CharField(source="project.key")

    class Meta:
        model = Flag
        fields = [
            "project", "key", "name", "description", "kind", "valueType", "variants", "salt",
            "clientVisible", "tags", "expiresAt", "archived", "version", "created_at",
            "updated_at",
        ]  # fmt: skip


class FlagIn(serializers.Serializer[Any]):
    key = key_field()
    name = StrictCharField(max_length=200)
    description = StrictCharField(required=False, allow_blank=True)
    kind = serializers.ChoiceField(choices=Flag.Kind.choices, required=False)
    valueType = serializers.ChoiceField(
        source="value_type", choices=Flag.ValueType.choices, required=False
    )
    variants = serializers.DictField(required=False)
    salt = StrictCharField(required=False, allow_blank=True)
    clientVisible = serializers.BooleanField(source="client_visible", required=False)
    tags = serializers.ListField(child=StrictCharField(), required=False)
    expiresAt = serializers.DateField(source="expires_at", required=False, allow_null=True)
    reason = reason_field()


class FlagPatch(FlagIn, Versioned):
    key = key_field(required=False)
    name = StrictCharField(max_length=200, required=False)


class StateOut(serializers.ModelSerializer[FlagState]):
    flag = serializers.CharField(source="flag.key")
    environment = serializers.CharField(source="environment.key")
    offVariant = serializers.CharField(source="off_variant")
    defaultServe = serializers.JSONField(source="default_serve")

    class Meta:
        model = FlagState
        fields = [
            "flag", "environment", "enabled", "offVariant", "rules", "defaultServe",
            "prerequisites", "version", "updated_at",
        ]  # fmt: skip


class StatePatch(Versioned):
    enabled = serializers.BooleanField(required=False)
    offVariant = StrictCharField(source="off_variant", required=False)
    rules = serializers.ListField(child=serializers.JSONField(), required=False)
    defaultServe = serializers.JSONField(source="default_serve", required=False)
    prerequisites = serializers.ListField(child=serializers.JSONField(), required=False)


class KillIn(serializers.Serializer[Any]):
    reason = reason_field(required=True, help_text="Why the flag is being killed (audited).")


class ServeIn(serializers.Serializer[Any]):
    variant = StrictCharField(max_length=100, help_text="The variant everyone gets now.")
    reason = reason_field(required=True, help_text="Why (audited; the approvers are told).")


class HistoryOut(serializers.Serializer[Any]):
    """One recorded version of a flag state (flags.api.management.History)."""

    historyId = serializers.IntegerField(help_text="Give it to revert.")
    version = serializers.IntegerField()
    at = serializers.DateTimeField()
    by = serializers.CharField(allow_null=True)
    source = serializers.CharField()  # type: ignore[assignment]  # a field, not Field.source
    reason = serializers.CharField(allow_blank=True)
    enabled = serializers.BooleanField()
    offVariant = serializers.CharField()
    rules = serializers.JSONField()
    defaultServe = serializers.JSONField()
    prerequisites = serializers.JSONField()


class RevertIn(serializers.Serializer[Any]):
    historyId = serializers.IntegerField(source="history_id")
    version = serializers.IntegerField(required=False)
    reason = reason_field()


class SegmentOut(serializers.ModelSerializer[Segment]):
    keyAttribute = serializers.CharField(source="key_attribute")

    class Meta:
        model = Segment
        fields = [
            "key", "name", "description", "keyAttribute", "included", "excluded", "rules",
            "version", "updated_at",
        ]  # fmt: skip


class SegmentIn(serializers.Serializer[Any]):
    key = key_field()
    name = StrictCharField(max_length=200)
    description = StrictCharField(required=False, allow_blank=True)
    keyAttribute = StrictCharField(source="key_attribute", required=False)
    included = serializers.ListField(child=StrictCharField(), required=False)
    excluded = serializers.ListField(child=StrictCharField(), required=False)
    rules = serializers.ListField(child=serializers.JSONField(), required=False)
    reason = reason_field()


class SegmentPatch(SegmentIn, Versioned):
    key = key_field(required=False)
    name = StrictCharField(max_length=200, required=False)


class EnvironmentOut(serializers.ModelSerializer[Environment]):
    sortOrder = serializers.IntegerField(source="sort_order")
    isProduction = serializers.BooleanField(source="is_production")
    requiresApproval = serializers.BooleanField(source="requires_approval")
    corsOrigins = serializers.ListField(source="cors_origins", child=serializers.CharField())
    rulesetVersion = serializers.SerializerMethodField()

    class Meta:
        model = Environment
        fields = [
            "key", "name", "sortOrder", "isProduction", "requiresApproval", "corsOrigins",
            "version", "rulesetVersion",
        ]  # fmt: skip

    def get_rulesetVersion(self, env: Environment) -> int:  # noqa: N802 - API field name
        ruleset = getattr(env, "ruleset", None)
        return int(ruleset.version) if ruleset is not None else 0


class EnvironmentIn(serializers.Serializer[Any]):
    key = key_field()
    name = StrictCharField(max_length=200)
    sortOrder = serializers.IntegerField(  # a small-integer column
        source="sort_order", required=False, min_value=0, max_value=32767
    )
    isProduction = serializers.BooleanField(source="is_production", required=False)
    requiresApproval = serializers.BooleanField(source="requires_approval", required=False)
    # Origins allowed to call the browser endpoints with this environment's keys (flags.cors).
    corsOrigins = serializers.ListField(
        source="cors_origins",
        child=StrictCharField(max_length=200),
        max_length=100,
        required=False,
    )
    reason = reason_field()


class EnvironmentPatch(EnvironmentIn, Versioned):
    key = key_field(required=False)
    name = StrictCharField(max_length=200, required=False)


def changes_of(validated: dict[str, Any]) -> tuple[dict[str, Any], str, int | None]:
    """(model changes, reason, expected version) from a validated write."""
    data = dict(validated)
    reason: str = data.pop("reason", "") or ""
    version: int | None = data.pop("version", None)
    return data, reason, version


def query_bool(params: Any, name: str) -> bool:
    """A boolean filter: ``true`` or ``false`` (as OpenAPI writes them); absent is false."""
    values = [v.lower() for v in params.getlist(name)]
    if any(v not in ("true", "false") for v in values):
        raise serializers.ValidationError({name: ["Give true or false."]})
    return bool(values) and values[-1] == "true"


def query_choice(params: Any, name: str, choices: list[str]) -> str:
    values = params.getlist(name)
    if not values or any(v not in choices for v in values):
        raise serializers.ValidationError({name: [f"One of {', '.join(choices)}."]})
    return str(values[-1])


class ReasonQuery(serializers.Serializer[Any]):
    reason = reason_field()


def query_reason(params: Any) -> str:
    """The ``?reason=`` of a DELETE, checked like a reason in a body (400 naming ``reason``)."""
    query = ReasonQuery(data={"reason": params.get("reason", "")})
    query.is_valid(raise_exception=True)
    return str(query.validated_data["reason"])


# Query filters of the management lists, for the OpenAPI document.
SEARCH_FILTER = [OpenApiParameter("search", str, description="Part of the key (or name).")]
FLAG_FILTERS = [
    OpenApiParameter("archived", bool, description="Archived flags instead (default false)."),
    OpenApiParameter("kind", str, enum=Flag.Kind.values),
    OpenApiParameter("tag", str, description="Flags carrying this tag."),
    OpenApiParameter("clientVisible", bool),
    *SEARCH_FILTER,
]
STATE_FILTERS = [OpenApiParameter("enabled", bool)]
