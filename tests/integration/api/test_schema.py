"""The OpenAPI schema describes every endpoint and its key authentication, without warnings."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command

from flags.history import REASON_MAX_LENGTH

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


def _schema(tmp_path: Path) -> dict[str, Any]:
    out = tmp_path / "schema.json"
    call_command("spectacular", "--format", "openapi-json", "--file", str(out))
    loaded: dict[str, Any] = json.loads(out.read_text())
    return loaded


def test_the_schema_says_what_the_server_does(tmp_path: Path) -> None:
    schema = _schema(tmp_path)
    paths, components = schema["paths"], schema["components"]["schemas"]
    flags = "/api/v1/projects/{project}/flags"
    # Lists are paginated, with their parameters.
    listing = paths[flags]["get"]
    assert {"limit", "offset", "search"} <= {p["name"] for p in listing["parameters"]}
    page_ref = listing["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
    page = components[page_ref.rsplit("/", 1)[1]]
    assert set(page["properties"]) == {"count", "next", "previous", "results"}
    # Every error a management write can send, with the error shape.
    patch = paths[f"{flags}/{{key}}"]["patch"]
    assert {"400", "401", "403", "404", "409", "413", "415", "429"} <= set(patch["responses"])
    bad = patch["responses"]["400"]["content"]["application/json"]["schema"]["$ref"]
    assert bad.endswith("/FieldErrors")
    # PATCH needs its version; keys have their pattern and length.
    body_ref = patch["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    body = components[body_ref.rsplit("/", 1)[1]]
    assert body["required"] == ["version"]
    assert body["properties"]["key"]["pattern"] == "^[a-z0-9][a-z0-9_.-]{0,99}$"
    assert body["properties"]["key"]["maxLength"] == 100
    assert body["properties"]["reason"]["maxLength"] == REASON_MAX_LENGTH
    # Archiving answers 200 with the flag (not 204); deleting a segment answers 204.
    assert set(paths[f"{flags}/{{key}}"]["delete"]["responses"]) >= {"200"}
    assert "204" not in paths[f"{flags}/{{key}}"]["delete"]["responses"]
    assert "204" in paths["/api/v1/projects/{project}/segments/{key}"]["delete"]["responses"]
    # OFREP keeps the protocol's shapes and reasons.
    single = paths["/ofrep/v1/evaluate/flags/{key}"]["post"]["responses"]
    assert single["404"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "/OfrepFlagNotFound"
    )
    success = components["OfrepEvaluationSuccess"]["properties"]["reason"]
    reason_enum = components[success["$ref"].rsplit("/", 1)[1]]["enum"]
    assert set(reason_enum) == {"STATIC", "TARGETING_MATCH", "SPLIT", "DISABLED", "UNKNOWN"}
