"""Targeting in words: every rule shape of the shared vectors reads as sentences, never JSON."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from flagsite_sdk.engine import OPERATORS
from hypothesis import given
from hypothesis import strategies as st

from flags import describe

VECTORS = Path(__file__).resolve().parents[2] / "vectors"
EVALUATION = json.loads((VECTORS / "evaluation.json").read_text("utf-8"))
OPERATOR_CASES = json.loads((VECTORS / "operators.json").read_text("utf-8"))
# What raw JSON looks like in a sentence: quoted keys, braces, the ruleset's own field names.
RAW_JSON = re.compile(r'"|\{|\}|\b(rollout|variants|weight|bucketBy|operator|values|conditions)\b')


def assert_words(text: str) -> None:
    assert text.strip()
    # A regex operand is shown as /pattern/ and may hold braces of its own.
    assert not RAW_JSON.search(re.sub(r"/[^/]*/", "", text)), text


@pytest.mark.parametrize("key", sorted(EVALUATION["ruleset"]["flags"]))
def test_every_vector_flag_reads_as_sentences(key: str) -> None:
    flag = EVALUATION["ruleset"]["flags"][key]
    text = describe.describe_state(flag, "test")
    assert_words(text)
    assert text.startswith("test: ON" if flag["enabled"] else "test: OFF")
    if flag["enabled"]:
        for rule in flag["rules"]:
            for condition in rule["conditions"]:
                assert condition["attribute"] in text
        for prerequisite in flag.get("prerequisites", []):
            assert f"requires {prerequisite['flag']}" in text


@pytest.mark.parametrize("case", OPERATOR_CASES["cases"], ids=lambda c: c["name"])
def test_every_operator_vector_reads_as_words(case: dict[str, Any]) -> None:
    condition = case["condition"]
    text = describe.describe_condition(condition, OPERATOR_CASES["segments"])
    assert_words(text)
    for value in condition.get("values", []):
        assert str(value).lower() in text.lower() or isinstance(value, bool)


def test_every_engine_operator_has_its_own_phrase() -> None:
    for operator in OPERATORS:
        plain = describe.describe_condition({"attribute": "a", "operator": operator, "values": [1]})
        negated = describe.describe_condition(
            {"attribute": "a", "operator": operator, "values": [1], "negate": True}
        )
        assert describe.has_phrase(operator), operator
        assert plain != negated


def test_the_issue_examples() -> None:
    segments = {"free-us-uk": {"key_attribute": "accountId"}}
    state = {
        "enabled": True,
        "off_variant": "off",
        "rules": [
            {
                "id": "r",
                "conditions": [{"operator": "in_segment", "values": ["free-us-uk"]}],
                "serve": {"variant": "on"},
            }
        ],
        "default_serve": {"variant": "off"},
    }
    assert describe.describe_state(state, "production", segments) == (
        "production: ON · accounts in segment free-us-uk → on · everyone else → off"
    )
    rollout = {
        "rollout": {
            "bucketBy": "accountId",
            "fallbackVariant": "off",
            "variants": [{"variant": "on", "weight": 5000}, {"variant": "off", "weight": 95000}],
        }
    }
    assert describe.describe_serve(rollout) == (
        "5% of accounts (by accountId) → on, 95% → off; without accountId → off"
    )


def test_conditions_in_words() -> None:
    cases = {
        ("country", "in", ("US", "GB"), False): "country is one of US or GB",
        ("plan", "equals", ("free",), True): "plan is not free",
        ("age", "gte", (18,), False): "age is at least 18",
        ("email", "email_domain_in", ("acme.com",), False): "email is an email address at acme.com",
        ("app", "semver_lt", ("2.0.0",), False): "app is a version below 2.0.0",
        ("plan", "exists", (), False): "plan is set",
        ("accountId", "in", (), False): "accountId is in an empty list (matches nobody)",
    }
    for (attribute, operator, values, negate), expected in cases.items():
        condition: dict[str, Any] = {
            "attribute": attribute,
            "operator": operator,
            "values": list(values),
            "negate": negate,
        }
        assert describe.describe_condition(condition) == expected


def test_percentages_keep_the_thousandths() -> None:
    assert describe.percent(5000) == "5%"
    assert describe.percent(12345) == "12.345%"
    assert describe.percent(0) == "0%"
    assert describe.percent(100_000) == "100%"


def test_disabled_and_kill_switch_states() -> None:
    state = {
        "enabled": False,
        "off_variant": "off",
        "rules": [],
        "default_serve": {"variant": "on"},
    }
    assert describe.describe_state(state) == "OFF · everyone → off"


def test_changes_of_a_state_in_words() -> None:
    before = {
        "enabled": False,
        "off_variant": "off",
        "prerequisites": [],
        "rules": [
            {"id": "a", "conditions": [], "serve": {"variant": "on"}},
            {"id": "b", "conditions": [], "serve": {"variant": "off"}},
        ],
        "default_serve": {
            "rollout": {
                "bucketBy": "accountId",
                "variants": [
                    {"variant": "on", "weight": 5000},
                    {"variant": "off", "weight": 95000},
                ],
            }
        },
    }
    after = json.loads(json.dumps(before))
    after["enabled"] = True
    after["prerequisites"] = [{"flag": "maintenance-mode", "variants": ["off"]}]
    after["rules"] = [
        {"id": "b", "conditions": [], "serve": {"variant": "on"}},
        {
            "id": "c",
            "conditions": [{"attribute": "plan", "operator": "equals", "values": ["free"]}],
            "serve": {"variant": "on"},
        },
    ]
    after["default_serve"]["rollout"]["variants"] = [
        {"variant": "on", "weight": 25000},
        {"variant": "off", "weight": 75000},
    ]
    assert describe.describe_changes("state", before, after) == [
        "turned ON",
        "added prerequisite: requires maintenance-mode to serve off",
        "added rule c: plan is free → on",
        "removed rule a (everyone → on)",
        "rule b serve changed from off to on",
        "default serve (everyone else): rollout on 5% → 25%, off 95% → 75%",
    ]
    assert describe.describe_changes("state", before, before) == []


def test_changes_of_a_flag_and_a_segment_in_words() -> None:
    flag_before = {"name": "A", "variants": {"on": True, "off": False}, "tags": ["x"], "salt": ""}
    flag_after = {"name": "B", "variants": {"on": True, "beta": False}, "tags": ["y"], "salt": "s"}
    assert describe.describe_changes("flag", flag_before, flag_after) == [
        "name changed from A to B",
        "added variant beta = false",
        "removed variant off (was false)",
        "salt set to s",
        "added y to tags",
        "removed x from tags",
    ]
    segment_before = {"key_attribute": "accountId", "included": ["acct-1"], "rules": []}
    segment_after = {
        "keyAttribute": "accountId",
        "included": ["acct-1", "acct-2"],
        "rules": [{"id": "s1", "conditions": [{"attribute": "plan", "operator": "exists"}]}],
    }
    assert describe.describe_changes("segment", segment_before, segment_after) == [
        "added rule s1: matching plan is set",
        "added acct-2 to included",
    ]


values = st.lists(
    st.one_of(
        st.text(alphabet="abc XYZ-@.", max_size=8),
        st.integers(),
        st.booleans(),
        st.floats(allow_nan=False),
    ),
    max_size=4,
)


@given(
    operator=st.sampled_from(sorted(OPERATORS)),
    values=values,
    negate=st.booleans(),
    case_insensitive=st.booleans(),
)
def test_any_condition_reads_as_words(
    operator: str, values: list[Any], negate: bool, case_insensitive: bool
) -> None:
    condition = {
        "attribute": "plan",
        "operator": operator,
        "values": values,
        "negate": negate,
        "caseInsensitive": case_insensitive,
    }
    text = describe.describe_condition(condition)
    assert_words(text)
    assert text.startswith("plan ") or "segment" in text


@given(weights=st.lists(st.integers(0, 100_000), min_size=1, max_size=5))
def test_any_rollout_reads_as_percentages(weights: list[int]) -> None:
    serve = {
        "rollout": {"variants": [{"variant": f"v{i}", "weight": w} for i, w in enumerate(weights)]}
    }
    text = describe.describe_serve(serve)
    assert text.count("%") == len(weights)
    assert "by targetingKey" in text
    assert "an error" in text
