"""Every validation error, with the path it reports."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from flagsite_sdk.engine import RulesetError, RulesetInvalid, compile_ruleset, validate_ruleset

from .conftest import boolean_flag, rollout, ruleset

Mutation = Callable[[dict[str, Any]], None]


def base_doc() -> dict[str, Any]:
    allow = {
        "id": "allow",
        "conditions": [{"attribute": "accountId", "operator": "in", "values": ["acc-1"]}],
        "serve": {"variant": "on"},
    }
    beta = {
        "id": "beta",
        "conditions": [{"operator": "in_segment", "values": ["beta"]}],
        "serve": rollout(10_000),
    }
    segment = {
        "key": "beta",
        "version": 1,
        "included": ["user-1"],
        "rules": [
            {"id": "s1", "conditions": [{"attribute": "email", "operator": "exists"}]},
        ],
    }
    return ruleset(
        [
            boolean_flag("maintenance-mode"),
            boolean_flag(
                "new-pdf-engine",
                rules=[allow, beta],
                prerequisites=[{"flag": "maintenance-mode", "variants": ["off"]}],
                defaultServe=rollout(5_000, "accountId"),
            ),
        ],
        {"beta": segment},
    )


def pdf(doc: dict[str, Any]) -> dict[str, Any]:
    flag: dict[str, Any] = doc["flags"]["new-pdf-engine"]
    return flag


def cond(doc: dict[str, Any], **fields: Any) -> None:
    pdf(doc)["rules"][0]["conditions"][0] = fields


CASES: list[tuple[str, Mutation, str, str]] = [
    (
        "unknown operator",
        lambda d: cond(d, attribute="plan", operator="sounds_like", values=["x"]),
        "flags.new-pdf-engine.rules[0].conditions[0].operator",
        "unknown_operator",
    ),
    (
        "invalid regex",
        lambda d: cond(d, attribute="plan", operator="matches", values=["ok", "[unclosed"]),
        "flags.new-pdf-engine.rules[0].conditions[0].values[1]",
        "invalid_regex",
    ),
    (
        "atomic group (RE2 refuses it)",
        lambda d: cond(d, attribute="plan", operator="matches", values=["^(?>a+)$"]),
        "flags.new-pdf-engine.rules[0].conditions[0].values[0]",
        "invalid_regex",
    ),
    (
        "backreference",
        lambda d: cond(d, attribute="plan", operator="matches", values=["(a)\\1"]),
        "flags.new-pdf-engine.rules[0].conditions[0].values[0]",
        "invalid_regex",
    ),
    (
        "overlong regex",
        lambda d: cond(d, attribute="plan", operator="matches", values=["a" * 257]),
        "flags.new-pdf-engine.rules[0].conditions[0].values[0]",
        "invalid_regex",
    ),
    (
        "weights not summing to 100%",
        lambda d: pdf(d)["defaultServe"]["rollout"]["variants"][0].update(weight=6_000),
        "flags.new-pdf-engine.defaultServe.rollout.variants",
        "weights_sum",
    ),
    (
        "weights in a rule",
        lambda d: pdf(d)["rules"][1]["serve"]["rollout"]["variants"][1].update(weight=1),
        "flags.new-pdf-engine.rules[1].serve.rollout.variants",
        "weights_sum",
    ),
    (
        "unknown segment",
        lambda d: pdf(d)["rules"][1]["conditions"][0].update(values=["beta", "gamma"]),
        "flags.new-pdf-engine.rules[1].conditions[0].values[1]",
        "unknown_segment",
    ),
    (
        "unknown variant served by a rule",
        lambda d: pdf(d)["rules"][0].update(serve={"variant": "maybe"}),
        "flags.new-pdf-engine.rules[0].serve.variant",
        "unknown_variant",
    ),
    (
        "unknown variant in a rollout",
        lambda d: pdf(d)["defaultServe"]["rollout"]["variants"][1].update(variant="of"),
        "flags.new-pdf-engine.defaultServe.rollout.variants[1].variant",
        "unknown_variant",
    ),
    (
        "unknown fallback variant",
        lambda d: pdf(d)["defaultServe"]["rollout"].update(fallbackVariant="none"),
        "flags.new-pdf-engine.defaultServe.rollout.fallbackVariant",
        "unknown_variant",
    ),
    (
        "variant twice in a rollout",
        lambda d: pdf(d)["defaultServe"]["rollout"]["variants"][1].update(variant="on"),
        "flags.new-pdf-engine.defaultServe.rollout.variants[1].variant",
        "duplicate_variant",
    ),
    (
        "unknown offVariant",
        lambda d: pdf(d).update(offVariant="dark"),
        "flags.new-pdf-engine.offVariant",
        "unknown_variant",
    ),
    (
        "unknown prerequisite variant",
        lambda d: pdf(d)["prerequisites"][0].update(variants=["off", "paused"]),
        "flags.new-pdf-engine.prerequisites[0].variants[1]",
        "unknown_variant",
    ),
    (
        "unknown prerequisite flag",
        lambda d: pdf(d)["prerequisites"][0].update(flag="ops-switch"),
        "flags.new-pdf-engine.prerequisites[0].flag",
        "unknown_prerequisite",
    ),
    (
        "prerequisite on itself",
        lambda d: pdf(d)["prerequisites"].append({"flag": "new-pdf-engine", "variants": ["on"]}),
        "flags.new-pdf-engine.prerequisites[1].flag",
        "prerequisite_cycle",
    ),
    (
        "two-flag prerequisite cycle",
        lambda d: d["flags"]["maintenance-mode"].update(
            prerequisites=[{"flag": "new-pdf-engine", "variants": ["on"]}]
        ),
        "flags.new-pdf-engine.prerequisites[0].flag",
        "prerequisite_cycle",
    ),
    (
        "variant value not matching valueType",
        lambda d: pdf(d)["variants"].update(on="yes"),
        "flags.new-pdf-engine.variants.on",
        "value_type",
    ),
    (
        "key differing from its entry",
        lambda d: pdf(d).update(key="other"),
        "flags.new-pdf-engine.key",
        "key_mismatch",
    ),
    (
        "segment key differing from its entry",
        lambda d: d["segments"]["beta"].update(key="alpha"),
        "segments.beta.key",
        "key_mismatch",
    ),
    (
        "duplicate rule id",
        lambda d: pdf(d)["rules"][1].update(id="allow"),
        "flags.new-pdf-engine.rules[1].id",
        "duplicate_rule_id",
    ),
    (
        "duplicate segment rule id",
        lambda d: d["segments"]["beta"]["rules"].append({"id": "s1", "conditions": []}),
        "segments.beta.rules[1].id",
        "duplicate_rule_id",
    ),
    (
        "segment rule using a segment",
        lambda d: d["segments"]["beta"]["rules"][0]["conditions"].append(
            {"operator": "in_segment", "values": ["beta"]}
        ),
        "segments.beta.rules[0].conditions[1].operator",
        "segment_in_segment",
    ),
    (
        "segment operator without segments",
        lambda d: pdf(d)["rules"][1]["conditions"][0].update(values=[]),
        "flags.new-pdf-engine.rules[1].conditions[0].values",
        "invalid_operand",
    ),
    (
        "number operator with a string",
        lambda d: cond(d, attribute="age", operator="lt", values=["18"]),
        "flags.new-pdf-engine.rules[0].conditions[0].values",
        "invalid_operand",
    ),
    (
        "single-value operator with two values",
        lambda d: cond(d, attribute="plan", operator="equals", values=["a", "b"]),
        "flags.new-pdf-engine.rules[0].conditions[0].values",
        "invalid_operand",
    ),
    (
        "bad semantic version",
        lambda d: cond(d, attribute="v", operator="semver_gt", values=["1.2"]),
        "flags.new-pdf-engine.rules[0].conditions[0].values[0]",
        "invalid_operand",
    ),
    (
        "bad date",
        lambda d: cond(d, attribute="d", operator="before", values=["31/12/2024"]),
        "flags.new-pdf-engine.rules[0].conditions[0].values[0]",
        "invalid_operand",
    ),
    (
        "exists with values",
        lambda d: cond(d, attribute="d", operator="exists", values=["x"]),
        "flags.new-pdf-engine.rules[0].conditions[0].values",
        "invalid_operand",
    ),
    (
        "condition without attribute",
        lambda d: cond(d, operator="equals", values=["x"]),
        "flags.new-pdf-engine.rules[0].conditions[0].attribute",
        "schema.required",
    ),
    (
        "missing salt",
        lambda d: pdf(d).pop("salt"),
        "flags.new-pdf-engine.salt",
        "schema.required",
    ),
    (
        "unknown property",
        lambda d: pdf(d).update(colour="red"),
        "flags.new-pdf-engine.colour",
        "schema.additionalProperties",
    ),
    (
        "unknown value type",
        lambda d: pdf(d).update(valueType="date"),
        "flags.new-pdf-engine.valueType",
        "schema.enum",
    ),
    (
        "weight above 100%",
        lambda d: pdf(d)["defaultServe"]["rollout"]["variants"][0].update(weight=100_001),
        "flags.new-pdf-engine.defaultServe.rollout.variants[0].weight",
        "schema.maximum",
    ),
    (
        "serve with both variant and rollout",
        lambda d: pdf(d)["rules"][0]["serve"].update(rollout=rollout(1)["rollout"]),
        "flags.new-pdf-engine.rules[0].serve",
        "schema.maxProperties",
    ),
    (
        "unsupported schema version",
        lambda d: d.update(schemaVersion=2),
        "schemaVersion",
        "schema.const",
    ),
    (
        "negative ruleset version",
        lambda d: d.update(version=-1),
        "version",
        "schema.minimum",
    ),
]


def test_base_document_is_valid() -> None:
    assert validate_ruleset(base_doc()) == []


@pytest.mark.parametrize(
    ("mutate", "path", "code"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_validation_error(mutate: Mutation, path: str, code: str) -> None:
    doc = base_doc()
    mutate(doc)

    errors = validate_ruleset(doc)

    assert (path, code) in {(e.path, e.code) for e in errors}, errors
    with pytest.raises(RulesetInvalid) as raised:
        compile_ruleset(doc)
    assert raised.value.errors == errors


def test_errors_carry_readable_messages() -> None:
    doc = base_doc()
    pdf(doc)["defaultServe"]["rollout"]["variants"][0]["weight"] = 6_000

    [error] = validate_ruleset(doc)

    assert error == RulesetError(
        "flags.new-pdf-engine.defaultServe.rollout.variants",
        "weights sum to 101000, they must sum to 100000 (100%)",
        "weights_sum",
    )


def test_several_errors_are_all_reported() -> None:
    doc = base_doc()
    pdf(doc)["offVariant"] = "dark"
    pdf(doc)["rules"][0]["serve"] = {"variant": "maybe"}

    paths = {e.path for e in validate_ruleset(doc)}

    assert paths == {
        "flags.new-pdf-engine.offVariant",
        "flags.new-pdf-engine.rules[0].serve.variant",
    }


@pytest.mark.parametrize("doc", [None, [], "flags", 3])
def test_non_object_document_is_an_error_not_an_exception(doc: Any) -> None:
    [error] = validate_ruleset(doc)

    assert error.path == ""
    assert error.code == "schema.type"


@pytest.mark.parametrize(
    "pattern",
    ["^[a-z0-9._%+-]+@example\\.com$", "(\\d{1,3}\\.){3}\\d{1,3}", "^(foo|bar)+$", "^beta-.*$"],
)
def test_ordinary_patterns_are_accepted(pattern: str) -> None:
    doc = base_doc()
    cond(doc, attribute="email", operator="matches", values=[pattern])

    assert validate_ruleset(doc) == []


@pytest.mark.parametrize(
    "pattern", ["(a*)*", "(\\w+\\s?)*$", "(a|ab)*c", "(?:a+){2,5}", "^(a?a?)+$", "a*a*a*a*a*b"]
)
def test_patterns_that_backtrack_elsewhere_are_accepted_as_re2_runs_them_in_linear_time(
    pattern: str,
) -> None:
    doc = base_doc()
    cond(doc, attribute="email", operator="matches", values=[pattern])

    assert validate_ruleset(doc) == []


@pytest.mark.parametrize(
    ("pattern", "reason"),
    [
        ("(?P<x>a)(?P=x)", "(?P"),
        ("(a)\\1", "\\1"),
        ("(?=a)b", "(?="),
        ("(?<!a)b", "(?<"),
        ("(?>a+)b", "(?>"),
        ("a++b", "++"),
        ("a{1001}", "{1001}"),
        ("[unclosed", "missing ]"),
        ("a\ud800", "lone surrogate"),
    ],
)
def test_patterns_re2_refuses_are_invalid_with_its_reason(pattern: str, reason: str) -> None:
    doc = base_doc()
    cond(doc, attribute="email", operator="matches", values=["ok", pattern])

    errors = validate_ruleset(doc)

    assert [(e.path, e.code) for e in errors] == [
        ("flags.new-pdf-engine.rules[0].conditions[0].values[1]", "invalid_regex")
    ]
    assert reason in errors[0].message
