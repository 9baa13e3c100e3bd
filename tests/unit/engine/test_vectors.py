"""Table-driven vectors from tests/vectors/*.json (shared with the other SDKs)."""

from __future__ import annotations

from typing import Any

import pytest
from flagsite_sdk.engine import RulesetInvalid, bucket, compile_ruleset, validate_ruleset

from .conftest import boolean_flag, load_vector, ruleset

OPERATOR_VECTORS = load_vector("operators.json")
EVALUATION_VECTORS = load_vector("evaluation.json")
BUCKET_VECTORS = load_vector("bucketing.json")
OPERAND_VECTORS = load_vector("operands.json")
FORWARD_VECTORS = load_vector("forward.json")


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


@pytest.mark.parametrize("case", OPERAND_VECTORS["cases"], ids=lambda c: c["name"])
def test_operand_vector(case: dict[str, Any]) -> None:
    condition = {"attribute": "a", "operator": case["operator"], "values": case["values"]}
    rule = {"id": "r", "conditions": [condition], "serve": {"variant": "on"}}
    doc = ruleset([boolean_flag("f", rules=[rule])])

    errors = validate_ruleset(doc)

    if case["valid"]:
        assert errors == []
        assert compile_ruleset(doc, lenient=True).broken_flags == frozenset()
    else:
        path = f"flags.f.rules[0].conditions[0].{case['path']}"
        assert [(e.path, e.code) for e in errors] == [(path, "invalid_operand")], errors
        assert compile_ruleset(doc, lenient=True).broken_flags == {"f"}


def test_forward_vectors_set_aside_what_cannot_compile() -> None:
    compiled = compile_ruleset(FORWARD_VECTORS["ruleset"], lenient=True)

    assert sorted(compiled.broken_flags) == FORWARD_VECTORS["brokenFlags"]
    assert sorted(compiled.broken_segments) == FORWARD_VECTORS["brokenSegments"]
    with pytest.raises(RulesetInvalid):
        compile_ruleset(FORWARD_VECTORS["ruleset"])  # the strict compile (the server's saves)


@pytest.mark.parametrize("case", FORWARD_VECTORS["cases"], ids=lambda c: c["name"])
def test_forward_vector(case: dict[str, Any]) -> None:
    compiled = compile_ruleset(FORWARD_VECTORS["ruleset"], lenient=True)
    details = compiled.evaluate(case["flag"], case["context"], case["default"])
    expect = case["expect"]

    assert details.value == expect["value"]
    assert type(details.value) is type(expect["value"])
    assert details.variant == expect["variant"]
    assert details.reason == expect["reason"]
    assert details.rule_id == expect["ruleId"]
    assert details.error_code == expect["errorCode"]
    assert bool(details.notes) is expect["notes"], details.notes
