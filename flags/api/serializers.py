"""Management payloads. Field names are the ruleset document's (camelCase), so an error path
from the engine's validator (``rules[0].conditions[1].operator``) names a request field as is.
"""

# ruff: noqa: N815 - the API speaks the ruleset document's camelCase
from __future__ import annotations

from typing import Any

from rest_framework import serializers

from flags.models import Environment, Flag, FlagState, Segment

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


def api_path(path: str) -> str:
    """A service error path in API names (model field names become camelCase)."""
    head, sep, rest = path.partition(".")
    name, bracket, index = head.partition("[")
    return MODEL_TO_API.get(name, name) + bracket + index + sep + rest


class Versioned(serializers.Serializer[Any]):
    version = serializers.IntegerField(
        required=True, help_text="The version you edited; 409 if it changed since."
    )
    reason = serializers.CharField(required=False, allow_blank=True, default="")


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
    key = serializers.CharField(max_length=100)
    name = serializers.CharField(max_length=200)
    description = serializers.CharField(required=False, allow_blank=True)
    kind = serializers.ChoiceField(choices=Flag.Kind.choices, required=False)
    valueType = serializers.ChoiceField(
        source="value_type", choices=Flag.ValueType.choices, required=False
    )
    variants = serializers.DictField(required=False)
    salt = serializers.CharField(required=False, allow_blank=True)
    clientVisible = serializers.BooleanField(source="client_visible", required=False)
    tags = serializers.ListField(child=serializers.CharField(), required=False)
    expiresAt = serializers.DateField(source="expires_at", required=False, allow_null=True)
    reason = serializers.CharField(required=False, allow_blank=True, default="")


class FlagPatch(FlagIn, Versioned):
    key = serializers.CharField(max_length=100, required=False)
    name = serializers.CharField(max_length=200, required=False)


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
    offVariant = serializers.CharField(source="off_variant", required=False)
    rules = serializers.ListField(child=serializers.JSONField(), required=False)
    defaultServe = serializers.JSONField(source="default_serve", required=False)
    prerequisites = serializers.ListField(child=serializers.JSONField(), required=False)


class KillIn(serializers.Serializer[Any]):
    reason = serializers.CharField(help_text="Why the flag is being killed (audited).")


class RevertIn(serializers.Serializer[Any]):
    historyId = serializers.IntegerField(source="history_id")
    version = serializers.IntegerField(required=False)
    reason = serializers.CharField(required=False, allow_blank=True, default="")


class SegmentOut(serializers.ModelSerializer[Segment]):
    keyAttribute = serializers.CharField(source="key_attribute")

    class Meta:
        model = Segment
        fields = [
            "key", "name", "description", "keyAttribute", "included", "excluded", "rules",
            "version", "updated_at",
        ]  # fmt: skip


class SegmentIn(serializers.Serializer[Any]):
    key = serializers.CharField(max_length=100)
    name = serializers.CharField(max_length=200)
    description = serializers.CharField(required=False, allow_blank=True)
    keyAttribute = serializers.CharField(source="key_attribute", required=False)
    included = serializers.ListField(child=serializers.CharField(), required=False)
    excluded = serializers.ListField(child=serializers.CharField(), required=False)
    rules = serializers.ListField(child=serializers.JSONField(), required=False)
    reason = serializers.CharField(required=False, allow_blank=True, default="")


class SegmentPatch(SegmentIn, Versioned):
    key = serializers.CharField(max_length=100, required=False)
    name = serializers.CharField(max_length=200, required=False)


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
    key = serializers.CharField(max_length=100)
    name = serializers.CharField(max_length=200)
    sortOrder = serializers.IntegerField(source="sort_order", required=False)
    isProduction = serializers.BooleanField(source="is_production", required=False)
    requiresApproval = serializers.BooleanField(source="requires_approval", required=False)
    # Origins allowed to call the browser endpoints with this environment's keys (flags.cors).
    corsOrigins = serializers.ListField(
        source="cors_origins",
        child=serializers.CharField(max_length=200),
        max_length=100,
        required=False,
    )
    reason = serializers.CharField(required=False, allow_blank=True, default="")


class EnvironmentPatch(EnvironmentIn, Versioned):
    key = serializers.CharField(max_length=100, required=False)
    name = serializers.CharField(max_length=200, required=False)


def changes_of(validated: dict[str, Any]) -> tuple[dict[str, Any], str, int | None]:
    """(model changes, reason, expected version) from a validated write."""
    data = dict(validated)
    reason: str = data.pop("reason", "") or ""
    version: int | None = data.pop("version", None)
    return data, reason, version
