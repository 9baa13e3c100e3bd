"""The OpenAPI schema describes every endpoint and its key authentication, without warnings."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from django.core.management import call_command

pytestmark = pytest.mark.integration


def test_the_schema_is_valid_and_generates_without_warnings(tmp_path: Path) -> None:
    out = tmp_path / "schema.json"
    # --fail-on-warn turns any view drf-spectacular cannot describe into an error.
    call_command("spectacular", "--validate", "--fail-on-warn", "--format", "openapi-json",
                 "--file", str(out))  # fmt: skip
    schema = json.loads(out.read_text())
    paths = schema["paths"]
    for path in (
        "/api/v1/events",
        "/api/v1/analytics/flags/{key}/comparison",
        "/api/v1/projects/{project}/segments/{key}",
        "/ofrep/v1/evaluate/flags",
    ):
        assert path in paths
    assert {"apiKey", "evaluationKey"} <= set(schema["components"]["securitySchemes"])
    assert paths["/api/v1/evaluate"]["post"]["security"][0] == {"evaluationKey": []}
    operation_ids = [op["operationId"] for item in paths.values() for op in item.values()]
    assert len(operation_ids) == len(set(operation_ids))
