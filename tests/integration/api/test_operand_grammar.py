"""One engine contract, through the server (issue 24, item 1): operands outside the grammar are
refused at save time with their path and nothing is written; numbers beyond the range and a
2^64 targeting key evaluate on the server as in the Node engine; a document stored under the
former grammar keeps every other flag serving."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from django.test import Client

from flags import evaluation
from flags.models import Ruleset
from tests.integration.api.conftest import World, enable
from tests.js.conftest import js_sdk as built_js_sdk
from tests.js.conftest import run_node

pytestmark = pytest.mark.integration
js_sdk = built_js_sdk  # the JavaScript SDKs, built once per session (tests/js/conftest.py)
BASE = "/api/v1/projects/shop"
STATE = f"{BASE}/flags/banner/environments/development"
ISSUE_OPERANDS = [
    ("before", "20250101"),
    ("before", "2025-W01-1"),
    ("after", "2025-01-01T1000"),
    ("after", "2025-01-01T10:00:00"),
    ("semver_gt", "1\u0661.0.0"),
    ("gt", 2**53),
    ("in", 2**64),
]


def send(client: Client, world: World, method: str, url: str, body: Any = None) -> Any:
    call = getattr(client, method)
    return call(url, body, content_type="application/json", **world.auth("management"))


def rule(operator: str, value: Any) -> list[dict[str, Any]]:
    condition = {"attribute": "a", "operator": operator, "values": [value]}
    return [{"id": "r1", "conditions": [condition], "serve": {"variant": "sale"}}]


@pytest.mark.parametrize(("operator", "value"), ISSUE_OPERANDS)
def test_an_operand_outside_the_grammar_is_refused_with_its_path(
    client: Client, world: World, operator: str, value: Any
) -> None:
    ruleset_before = Ruleset.objects.get(environment=world.dev).version
    state = send(client, world, "get", STATE).json()

    response = send(client, world, "patch", STATE,
                    {"version": state["version"], "rules": rule(operator, value)})  # fmt: skip

    assert response.status_code == 400, response.content
    errors = response.json()["errors"]
    assert [e["path"] for e in errors] == ["rules[0].conditions[0].values[0]"], errors
    assert send(client, world, "get", STATE).json()["version"] == state["version"]
    assert Ruleset.objects.get(environment=world.dev).version == ruleset_before


def test_an_operand_inside_the_grammar_is_saved(client: Client, world: World) -> None:
    state = send(client, world, "get", STATE).json()
    for operator, value in [("before", "2025-01-01"), ("after", "2025-01-01T10:00:00+01:00"),
                            ("semver_gt", "1.0.0-rc.1"), ("gt", 2**53 - 1)]:  # fmt: skip
        response = send(client, world, "patch", STATE,
                        {"version": state["version"], "rules": rule(operator, value)})  # fmt: skip
        assert response.status_code == 200, response.content
        state = response.json()


def test_big_numbers_evaluate_on_the_server_as_in_the_node_engine(
    client: Client, world: World, js_sdk: Path
) -> None:
    split = [{"variant": "on", "weight": 50_000}, {"variant": "off", "weight": 50_000}]
    big = [{"id": "big", "conditions": [{"attribute": "n", "operator": "gt", "values": [0]}],
            "serve": {"variant": "on"}}]  # fmt: skip
    enable(world, "new-checkout", world.dev, rules=big,
           default_serve={"rollout": {"fallbackVariant": "off", "variants": split}})  # fmt: skip
    contexts = [{"targetingKey": 2**64}, {"targetingKey": 2**53}, {"targetingKey": 2**53 - 1},
                {"targetingKey": "x", "n": 2**53 + 1}, {"targetingKey": "x", "n": 2**64},
                {"targetingKey": "x", "n": 2**53 - 1}]  # fmt: skip
    server = []
    for context in contexts:
        body = {"flag": "new-checkout", "context": context, "default": True}
        answer = client.post("/api/v1/evaluate", body, content_type="application/json",
                             **world.auth("server")).json()  # fmt: skip
        server.append([answer["variant"], answer["reason"]])
    document = Ruleset.objects.get(environment=world.dev).document

    for reader in ("json", "lossless"):
        node = run_node(
            js_sdk / "tools" / "evaluate-batch.mjs",
            {"batches": [{"ruleset": document, "cases": [("new-checkout", c) for c in contexts]}]},
            cwd=js_sdk,
            args=[f"--reader={reader}"],
        )
        assert [r[:2] for r in node["results"][0]] == server, reader
    assert server[0] == server[1] == ["off", "DEFAULT"]  # beyond the range: the fallback
    assert server[2][1] == "SPLIT"  # 2^53 - 1 is a key, its decimal digits
    assert server[3][1] == server[4][1] == "SPLIT"  # beyond the range: the rule does not hold
    assert server[5] == ["on", "TARGETING_MATCH"]


def test_a_document_stored_under_the_former_grammar_keeps_the_other_flags_serving(
    client: Client, world: World
) -> None:
    row = Ruleset.objects.get(environment=world.dev)
    document = row.document
    document["flags"]["banner"]["rules"] = rule("before", "20250101")
    row.document = document
    row.save(update_fields=["document"])
    evaluation.clear()

    body = {"flags": ["banner", "internal-tool"], "context": {"targetingKey": "u"}}
    response = client.post("/api/v1/evaluate", body, content_type="application/json",
                           **world.auth("server"))  # fmt: skip

    assert response.status_code == 200, response.content
    banner, tool = response.json()["flags"]
    assert (banner["reason"], banner["errorCode"]) == ("ERROR", "PARSE_ERROR")
    assert (tool["value"], tool["reason"]) == (True, "STATIC")
