"""Shared builders for engine tests."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

VECTORS = Path(__file__).resolve().parents[2] / "vectors"


def load_vector(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((VECTORS / name).read_text("utf-8"))
    return data


def boolean_flag(key: str, **fields: Any) -> dict[str, Any]:
    flag: dict[str, Any] = {
        "key": key,
        "version": 1,
        "valueType": "boolean",
        "variants": {"on": True, "off": False},
        "enabled": True,
        "offVariant": "off",
        "salt": key,
        "rules": [],
        "defaultServe": {"variant": "off"},
    }
    flag.update(fields)
    return flag


def ruleset(flags: list[dict[str, Any]], segments: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "schemaVersion": 1,
        "project": "tests",
        "environment": "test",
        "version": 1,
        "flags": {f["key"]: f for f in flags},
        "segments": segments or {},
    }


def rollout(on_weight: int, bucket_by: str | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "fallbackVariant": "off",
        "variants": [
            {"variant": "on", "weight": on_weight},
            {"variant": "off", "weight": 100_000 - on_weight},
        ],
    }
    if bucket_by is not None:
        spec["bucketBy"] = bucket_by
    return {"rollout": spec}


@pytest.fixture
def seed_doc() -> dict[str, Any]:
    """A valid document with segments, prerequisites, rules and a rollout."""
    return copy.deepcopy(load_vector("evaluation.json")["ruleset"])
