"""The public surface other packages code against."""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

import pytest
from flagsite_sdk import engine
from flagsite_sdk.engine import (
    OPERATORS,
    RULESET_SCHEMA_VERSION,
    CompiledRuleset,
    ErrorCode,
    EvaluationDetails,
    Reason,
    compile_ruleset,
)

from .conftest import boolean_flag, rollout, ruleset


@pytest.fixture
def compiled(seed_doc: dict[str, Any]) -> CompiledRuleset:
    return compile_ruleset(seed_doc)


def test_ruleset_metadata(compiled: CompiledRuleset, seed_doc: dict[str, Any]) -> None:
    assert compiled.version == seed_doc["version"]
    assert compiled.environment == "test"
    assert compiled.flag_keys() == list(seed_doc["flags"])


def test_flag_exposes_its_shape(compiled: CompiledRuleset) -> None:
    flag = compiled.flag("number-flag")

    assert flag is not None
    assert (flag.value_type, flag.version, flag.client_visible) == ("number", 2, False)
    assert dict(flag.variants) == {"small": 10, "big": 2500.0}
    assert compiled.flag("missing") is None


def test_is_enabled_falls_back_to_default(compiled: CompiledRuleset) -> None:
    assert compiled.is_enabled("static-on", {}) is True
    assert compiled.is_enabled("missing", {}, default=True) is True
    assert compiled.is_enabled("string-flag", {}, default=True) is True
    assert compiled.is_enabled("pct-no-fallback", {}, default=True) is True


def test_a_non_mapping_context_is_a_general_error(compiled: CompiledRuleset) -> None:
    details = compiled.evaluate("first-match", ["not", "a", "dict"], True)  # type: ignore[arg-type]

    assert (details.value, details.reason, details.error_code) == (
        True,
        Reason.ERROR,
        ErrorCode.GENERAL,
    )
    assert details.error_message
    assert compiled.is_enabled("first-match", 42, default=True) is True  # type: ignore[arg-type]


def test_evaluate_all(compiled: CompiledRuleset) -> None:
    everything = compiled.evaluate_all({"targetingKey": "u"})

    assert set(everything) == set(compiled.flag_keys())
    assert all(isinstance(d, EvaluationDetails) for d in everything.values())


def test_evaluate_all_client_visible_only() -> None:
    doc = ruleset([boolean_flag("public", clientVisible=True), boolean_flag("server-only")])

    assert list(compile_ruleset(doc).evaluate_all({}, client_visible_only=True)) == ["public"]


def test_details_are_frozen(compiled: CompiledRuleset) -> None:
    details = compiled.evaluate("static-on", {})

    with pytest.raises(AttributeError):
        details.value = False  # type: ignore[misc]


def test_operators_are_described() -> None:
    assert len(OPERATORS) == 22
    assert all(isinstance(text, str) and text for text in OPERATORS.values())


def test_schema_ships_as_package_data() -> None:
    text = resources.files(engine).joinpath("ruleset.schema.json").read_text("utf-8")
    schema = json.loads(text)

    assert schema["properties"]["schemaVersion"]["const"] == RULESET_SCHEMA_VERSION
    assert set(schema["$defs"]["condition"]["properties"]["operator"]["enum"]) == set(OPERATORS)


def test_reason_and_error_code_values_are_openfeature_names() -> None:
    assert {r.value for r in Reason} == {
        "STATIC",
        "TARGETING_MATCH",
        "SPLIT",
        "DEFAULT",
        "DISABLED",
        "ERROR",
    }
    assert {e.value for e in ErrorCode} == {
        "FLAG_NOT_FOUND",
        "TYPE_MISMATCH",
        "PARSE_ERROR",
        "TARGETING_KEY_MISSING",
        "GENERAL",
    }


def test_compile_without_validation_gives_same_answers(seed_doc: dict[str, Any]) -> None:
    checked = compile_ruleset(seed_doc)
    trusted = compile_ruleset(seed_doc, validate=False)

    for key in checked.flag_keys():
        assert checked.evaluate(key, {"targetingKey": "u"}) == trusted.evaluate(
            key, {"targetingKey": "u"}
        )


def test_rollout_at_zero_and_full() -> None:
    doc = ruleset(
        [
            boolean_flag("none", defaultServe=rollout(0)),
            boolean_flag("all", defaultServe=rollout(100_000)),
        ]
    )
    compiled = compile_ruleset(doc)

    for i in range(500):
        assert compiled.is_enabled("none", {"targetingKey": f"u{i}"}) is False
        assert compiled.is_enabled("all", {"targetingKey": f"u{i}"}) is True
