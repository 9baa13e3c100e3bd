"""Table-driven vectors from tests/vectors/*.json (shared with the other SDKs)."""

from __future__ import annotations

from typing import Any

import pytest
from flagsite_sdk.engine import bucket, compile_ruleset

from .conftest import boolean_flag, load_vector, ruleset

OPERATOR_VECTORS = load_vector("operators.json")
EVALUATION_VECTORS = load_vector("evaluation.json")
BUCKET_VECTORS = load_vector("bucketing.json")


@pytest.mark.parametrize("case", OPERATOR_VECTORS["cases"], ids=lambda c: c["name"])
def test_operator_vector(case: dict[str, Any]) -> None:
    rule = {"id": "rule", "conditions": [case["condition"]], "serve": {"variant": "on"}}
    doc = ruleset([boolean_flag("f", rules=[rule])], OPERATOR_VECTORS["segments"])
    details = compile_ruleset(doc).evaluate("f", case["context"], False)

    assert details.error_code is None
    assert details.value is case["expect"]
    assert details.rule_id == ("rule" if case["expect"] else None)
    assert bool(details.notes) is case.get("problem", False), details.notes


@pytest.mark.parametrize("case", EVALUATION_VECTORS["cases"], ids=lambda c: c["name"])
def test_evaluation_vector(case: dict[str, Any]) -> None:
    compiled = compile_ruleset(EVALUATION_VECTORS["ruleset"])
    details = compiled.evaluate(case["flag"], case["context"], case["default"])
    expect = case["expect"]

    assert details.value == expect["value"]
    assert type(details.value) is type(expect["value"])
    assert details.variant == expect["variant"]
    assert details.reason == expect["reason"]
    assert details.rule_id == expect["ruleId"]
    assert details.error_code == expect["errorCode"]
    if "notes" in expect:
        assert bool(details.notes) is expect["notes"], details.notes


@pytest.mark.parametrize("case", BUCKET_VECTORS["cases"], ids=lambda c: f"{c['salt']}/{c['value']}")
def test_bucket_vector(case: dict[str, Any]) -> None:
    assert bucket(case["salt"], case["value"]) == case["bucket"]


def test_every_operator_has_vectors() -> None:
    from flagsite_sdk.engine import OPERATORS

    covered = {c["condition"]["operator"] for c in OPERATOR_VECTORS["cases"]}
    assert covered == set(OPERATORS)
