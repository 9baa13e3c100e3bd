"""The lenient compile (forward.py): one flag that cannot compile never blocks the others."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from flagsite_sdk.engine import ErrorCode, RulesetInvalid, compile_ruleset
from hypothesis import given, settings
from hypothesis import strategies as st

from .conftest import boolean_flag, ruleset
from .test_properties import _hostile_edit, _seed_document, hostile_text, huge_numbers


def rule(condition: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"id": "r", "conditions": [condition], "serve": {"variant": "on"}}]


def test_a_number_no_double_holds_sets_aside_its_flag_and_the_rest_is_still_checked() -> None:
    # number_range errors are reported alone by the validator; the other flags' problems
    # must still be found, or compiling them would fail the whole document
    doc = ruleset(
        [
            boolean_flag("a", rules=rule({"attribute": "n", "operator": "gt", "values": [1e400]})),
            boolean_flag("b", rules=rule({"attribute": "n", "operator": "nope", "values": [1]})),
            boolean_flag("c", prerequisites=[{"flag": "a", "variants": ["off"]}]),
            boolean_flag("d", defaultServe={"variant": "on"}),
        ]
    )

    compiled = compile_ruleset(doc, lenient=True)

    assert compiled.broken_flags == {"a", "b"}
    assert compiled.evaluate("a", {}).error_code is ErrorCode.PARSE_ERROR
    assert compiled.evaluate("c", {}).variant == "off"  # its prerequisite serves nothing
    assert compiled.is_enabled("d", {}) is True


def test_unknown_fields_are_ignored_and_the_input_is_left_alone() -> None:
    flag = boolean_flag("f", rules=rule({"attribute": "p", "operator": "equals", "values": ["x"]}))
    flag["owner"] = "team-a"
    flag["rules"][0]["priority"] = 1
    flag["rules"][0]["conditions"][0]["weight"] = 2
    doc = {**ruleset([flag]), "generatedBy": "a newer server"}
    before = copy.deepcopy(doc)

    compiled = compile_ruleset(doc, lenient=True)

    assert doc == before
    assert compiled.broken_flags == frozenset()
    assert compiled.evaluate("f", {"p": "x"}).rule_id == "r"
    with pytest.raises(RulesetInvalid):
        compile_ruleset(doc)  # the server's strict validation still refuses them


@pytest.mark.parametrize(
    "change",
    [
        lambda d: d.update(schemaVersion=2),
        lambda d: d.update(flags=[]),
        lambda d: d.update(version="7"),
        lambda d: d.pop("environment"),
    ],
)
def test_an_unusable_top_level_is_refused_whole(change: Any) -> None:
    doc = ruleset([boolean_flag("f")])
    change(doc)

    with pytest.raises(RulesetInvalid):
        compile_ruleset(doc, lenient=True)


@settings(max_examples=120, deadline=None)
@given(
    choice=st.integers(min_value=0, max_value=10),
    text=hostile_text,
    number=huge_numbers,
    version=st.just("1.2.3"),
    chain=st.just(3),
)
def test_hostile_edits_break_at_most_the_flags_they_touch(
    choice: int, text: str, number: int | float, version: str, chain: int
) -> None:
    doc = _seed_document()
    _hostile_edit(doc, choice, text, number, version, chain)

    compiled = compile_ruleset(doc, lenient=True)

    assert compiled.broken_flags <= {"first-match", "number-flag"}
    for key in compiled.flag_keys():
        details = compiled.evaluate(key, {"targetingKey": "u", "plan": text})
        assert details.error_code in (None, ErrorCode.PARSE_ERROR, "TARGETING_KEY_MISSING")
        assert (details.error_code is ErrorCode.PARSE_ERROR) is (key in compiled.broken_flags)
