"""Small ruleset documents for SDK tests."""

from __future__ import annotations

from typing import Any


def boolean_flag(
    key: str, enabled: bool = True, *, serve: str = "on", version: int = 1
) -> dict[str, Any]:
    return {
        "key": key,
        "version": version,
        "valueType": "boolean",
        "variants": {"on": True, "off": False},
        "enabled": enabled,
        "offVariant": "off",
        "salt": key,
        "rules": [],
        "defaultServe": {"variant": serve},
    }


def string_flag(key: str, value: str = "blue") -> dict[str, Any]:
    return {
        "key": key,
        "version": 1,
        "valueType": "string",
        "variants": {"a": value, "control": "none"},
        "enabled": True,
        "offVariant": "control",
        "salt": key,
        "rules": [
            {
                "id": "beta",
                "conditions": [{"attribute": "plan", "operator": "equals", "values": ["beta"]}],
                "serve": {"variant": "control"},
            }
        ],
        "defaultServe": {"variant": "a"},
    }


def number_flag(key: str, value: float) -> dict[str, Any]:
    return {
        "key": key,
        "version": 1,
        "valueType": "number",
        "variants": {"v": value},
        "enabled": True,
        "offVariant": "v",
        "salt": key,
        "rules": [],
        "defaultServe": {"variant": "v"},
    }


def ruleset(
    version: int, *flags: dict[str, Any], environment: str = "production"
) -> dict[str, Any]:
    return {
        "schemaVersion": 1,
        "environment": environment,
        "version": version,
        "flags": {flag["key"]: flag for flag in flags},
        "segments": {},
    }
