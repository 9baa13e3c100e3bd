"""Hostile input to the engine: regexes in linear time, lone surrogates, huge numbers and chains.

Timing assertions compare two runs of the same code in the same process (a ratio between
1,000 and 100,000 characters), never a wall-clock limit: a linear matcher gives about 100,
a backtracking one gives thousands or never finishes.
"""

from __future__ import annotations

import copy
import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from flagsite_sdk.engine import RulesetInvalid, bucket, compile_ruleset, validate_ruleset
from flagsite_sdk.engine.regex import compile_pattern
from flagsite_sdk.engine.text import MAX_VALUE_LENGTH, utf8
from flagsite_sdk.engine.validate import MAX_PREREQUISITE_DEPTH
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from .conftest import boolean_flag, rollout, ruleset

REPO = Path(__file__).resolve().parents[3]
# Linear is 100; quadratic would be 10,000. The margin absorbs a busy machine.
LINEAR_RATIO_BOUND = 1_000


def best_time(run: Callable[[], object], repeat: int = 5) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
    return best


def growth_ratio(pattern: str, unit: str, tail: str = "") -> float:
    """Time on 100,000 characters over time on 1,000 (each the best of five)."""
    program = compile_pattern(pattern)
    short = utf8(unit * (1_000 // len(unit)) + tail)
    long = utf8(unit * (100_000 // len(unit)) + tail)

    def search_short() -> None:
        for _ in range(20):
            program.search(short)

    def search_long() -> None:
        for _ in range(20):
            program.search(long)

    return best_time(search_long) / max(best_time(search_short), 1e-9)


@pytest.mark.parametrize(
    ("pattern", "unit", "tail"),
    [
        ("a*a*a*a*a*b", "a", ""),  # 4.45 s on 100 characters with Python's re
        ("^(a?a?)+$", "a", "b"),  # over 10 s on 20 characters with Python's re
        ("[a-z]+\\d", "a", ""),  # quadratic with a backtracking search
        ("(a|aa)+$", "a", "!"),
        ("(x+x+)+y", "x", ""),
        ("^(\\w+\\s?)*$", "ab ", "!"),
    ],
)
def test_known_catastrophic_patterns_are_linear(pattern: str, unit: str, tail: str) -> None:
    assert validate_ruleset(_matches_doc(pattern)) == []

    assert growth_ratio(pattern, unit, tail) < LINEAR_RATIO_BOUND


def test_the_engine_answers_a_hostile_pattern_on_the_longest_value_it_reads() -> None:
    compiled = compile_ruleset(_matches_doc("^(a?a?)+$"))
    context = {"name": "a" * (MAX_VALUE_LENGTH - 1) + "b"}

    details = compiled.evaluate("f", context, False)

    assert (details.value, details.reason, details.notes) == (False, "DEFAULT", ())


_ATOMS = st.sampled_from(["a", "b", ".", "\\w", "\\d", "\\s", "[a-c]", "[^b]", "x", "\\pL"])


def _quantified(inner: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    quantifier = st.sampled_from(["", "*", "+", "?", "{2,5}", "{1,}", "*?", "+?"])
    return st.tuples(inner, quantifier).map(lambda t: f"(?:{t[0]}){t[1]}" if t[1] else t[0])


_PATTERNS = st.recursive(
    _quantified(_ATOMS),
    lambda inner: st.one_of(
        st.lists(_quantified(inner), min_size=1, max_size=4).map("".join),
        st.lists(inner, min_size=2, max_size=3).map(lambda parts: "(" + "|".join(parts) + ")+"),
        _quantified(inner),
    ),
    max_leaves=8,
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    body=_PATTERNS,
    anchored=st.booleans(),
    unit=st.sampled_from(["a", "ab", "a1 ", "xyz"]),
    tail=st.sampled_from(["", "!", "b"]),
)
def test_generated_patterns_are_linear(body: str, anchored: bool, unit: str, tail: str) -> None:
    pattern = f"^{body}$" if anchored else body
    if len(pattern) > 256:
        return
    assert validate_ruleset(_matches_doc(pattern)) == [], pattern

    assert growth_ratio(pattern, unit, tail) < LINEAR_RATIO_BOUND, pattern


def _matches_doc(pattern: str) -> dict[str, Any]:
    condition = {"attribute": "name", "operator": "matches", "values": [pattern]}
    rule = {"id": "r", "conditions": [condition], "serve": {"variant": "on"}}
    return ruleset([boolean_flag("f", rules=[rule])])


# --- Lone surrogates --------------------------------------------------------------------------


def test_a_lone_surrogate_buckets_as_the_replacement_character() -> None:
    assert bucket("flag", "\ud800") == bucket("flag", "\ufffd")
    assert bucket("flag", "a\udc00b") == bucket("flag", "a\ufffdb")
    assert bucket("flag", "\ud83d\ude00") == bucket("flag", "😀")  # a pair is one character


_CHILD = """
import json, sys
from flagsite_sdk.engine import compile_ruleset
doc = json.loads(sys.argv[1])
context = json.loads('{"targetingKey": "\\\\ud800", "name": "x\\\\udfff"}')
compiled = compile_ruleset(doc)
answers = {key: compiled.evaluate(key, context, None).variant for key in compiled.flag_keys()}
print(json.dumps(answers))
"""


def test_a_lone_surrogate_is_evaluated_in_a_child_process_that_exits_cleanly() -> None:
    matcher = {"attribute": "name", "operator": "matches", "values": ["^x.$"]}
    doc = ruleset(
        [
            boolean_flag("split", defaultServe=rollout(50_000)),
            boolean_flag("two-way-no-fallback", defaultServe=_no_fallback_split()),
            boolean_flag(
                "regex", rules=[{"id": "r", "conditions": [matcher], "serve": {"variant": "on"}}]
            ),
        ]
    )

    child = subprocess.run(
        [sys.executable, "-c", _CHILD, json.dumps(doc)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
        check=False,
    )

    assert child.returncode == 0, child.stderr
    answers = json.loads(child.stdout)
    expected = compile_ruleset(doc).evaluate("split", {"targetingKey": "\ufffd"}).variant
    assert answers == {"split": expected, "two-way-no-fallback": answers["two-way-no-fallback"]} | {
        "regex": "on"
    }
    assert answers["two-way-no-fallback"] in ("on", "off")


def _no_fallback_split() -> dict[str, Any]:
    serve = rollout(50_000)
    del serve["rollout"]["fallbackVariant"]
    return serve


@pytest.mark.parametrize(
    ("mutate", "path"),
    [
        (lambda f: f.update(salt="salt\ud800"), "flags.f.salt"),
        (lambda f: f.update(salt="salt\x00"), "flags.f.salt"),
        (lambda f: f["variants"].update({"bad\udfff": True}), "flags.f.variants.bad\udfff"),
        (lambda f: f["variants"].update({"nul\x00": True}), "flags.f.variants.nul\x00"),
        (
            lambda f: f["rules"].append(
                {"id": "r\ud800", "conditions": [], "serve": {"variant": "on"}}
            ),
            "flags.f.rules[0].id",
        ),
    ],
)
def test_the_validator_refuses_lone_surrogates_and_nul_in_names(
    mutate: Callable[[dict[str, Any]], None], path: str
) -> None:
    flag = boolean_flag("f")
    mutate(flag)

    errors = validate_ruleset(ruleset([flag]))

    assert (path, "invalid_text") in {(e.path, e.code) for e in errors}, errors
    with pytest.raises(RulesetInvalid):
        compile_ruleset(ruleset([flag]))


def test_a_segment_rule_id_with_a_lone_surrogate_is_refused() -> None:
    segment = {"key": "s", "version": 1, "rules": [{"id": "\udc00", "conditions": []}]}

    errors = validate_ruleset(ruleset([boolean_flag("f")], {"s": segment}))

    assert [(e.path, e.code) for e in errors] == [("segments.s.rules[0].id", "invalid_text")]


def test_a_flag_key_with_a_lone_surrogate_is_refused_by_the_schema() -> None:
    doc = ruleset([boolean_flag("f")])
    doc["flags"]["f\ud800"] = doc["flags"].pop("f")

    errors = validate_ruleset(doc)

    assert errors
    assert all(e.code != "internal" for e in errors)


# --- Huge numbers, huge versions, long chains ---------------------------------------------------


def _condition_doc(condition: dict[str, Any]) -> dict[str, Any]:
    rule = {"id": "r", "conditions": [condition], "serve": {"variant": "on"}}
    return ruleset([boolean_flag("f", rules=[rule])])


@pytest.mark.parametrize(
    "condition",
    [
        {"attribute": "n", "operator": "lt", "values": [10**400]},
        {"attribute": "n", "operator": "in", "values": [1, -(10**400)]},
        {"attribute": "n", "operator": "gte", "values": [float("inf")]},
        {"attribute": "n", "operator": "equals", "values": [float("nan")]},
    ],
)
def test_numbers_no_double_holds_are_refused_with_their_path(condition: dict[str, Any]) -> None:
    errors = validate_ruleset(_condition_doc(condition))

    assert errors
    assert all(e.code in ("number_range", "invalid_operand") for e in errors), errors
    assert all(e.path.startswith("flags.f.rules[0].conditions[0].values") for e in errors)
    with pytest.raises(RulesetInvalid):
        compile_ruleset(_condition_doc(condition))


def test_a_huge_number_anywhere_is_refused_not_internal() -> None:
    doc = ruleset([boolean_flag("f")])
    doc["flags"]["f"]["version"] = 10**5000  # repr() of it raises ValueError
    doc["flags"]["f"]["defaultServe"] = {
        "rollout": {"variants": [{"variant": "on", "weight": 10**400}]}
    }

    errors = validate_ruleset(doc)

    assert {(e.path, e.code) for e in errors} == {
        ("flags.f.version", "number_range"),
        ("flags.f.defaultServe.rollout.variants[0].weight", "number_range"),
    }


def test_a_number_flag_variant_out_of_range_is_refused() -> None:
    flag = boolean_flag("f", valueType="number", variants={"on": 10**400, "off": 0})

    errors = validate_ruleset(ruleset([flag]))

    assert [(e.path, e.code) for e in errors] == [("flags.f.variants.on", "number_range")]


def test_five_thousand_digit_version_parts_compare_exactly() -> None:
    huge = "9" * 5_000
    condition = {"attribute": "v", "operator": "semver_lt", "values": [f"1.{huge}.0"]}
    compiled = compile_ruleset(_condition_doc(condition))
    long_part = "9" * 4_000  # context values stay within the 4,096 code point bound

    assert validate_ruleset(_condition_doc(condition)) == []
    assert compiled.evaluate("f", {"v": "1.5.0"}).variant == "on"
    assert compiled.evaluate("f", {"v": f"1.{long_part}.0"}).variant == "on"
    assert compiled.evaluate("f", {"v": f"2.{long_part}.0"}).variant == "off"
    assert compiled.evaluate("f", {"v": f"1.1{'0' * 2_000}.0-rc.{'9' * 2_000}"}).variant == "on"
    assert compiled.evaluate("f", {"v": f"{long_part}.0.0"}).variant == "off"


def test_a_semver_operand_with_5000_digit_parts_orders_against_another() -> None:
    lower = f"1.{'9' * 4_999}8.0"
    condition = {"attribute": "v", "operator": "semver_gt", "values": [lower]}
    compiled = compile_ruleset(_condition_doc(condition))

    assert compiled.evaluate("f", {"v": f"1.1{'0' * 4_000}.0"}).variant == "off"
    assert compiled.evaluate("f", {"v": "2.0.0"}).variant == "on"


def _chain(length: int) -> dict[str, Any]:
    flags = [boolean_flag("f0")]
    for i in range(1, length):
        pre = [{"flag": f"f{i - 1}", "variants": ["off"]}]
        flags.append(boolean_flag(f"f{i}", prerequisites=pre))
    return ruleset(flags)


def test_a_chain_of_1100_prerequisites_is_refused_for_its_depth() -> None:
    errors = validate_ruleset(_chain(1_100))

    assert [(e.path, e.code) for e in errors] == [
        (f"flags.f{MAX_PREREQUISITE_DEPTH}.prerequisites", "prerequisite_depth")
    ]


def test_a_chain_of_the_maximum_depth_compiles_and_evaluates() -> None:
    compiled = compile_ruleset(_chain(MAX_PREREQUISITE_DEPTH))
    last = f"f{MAX_PREREQUISITE_DEPTH - 1}"

    assert compiled.evaluate(last, {}).error_code is None


def test_a_cycle_through_1200_flags_is_found_without_recursion() -> None:
    doc = _chain(1_200)
    doc["flags"]["f0"]["prerequisites"] = [{"flag": "f1199", "variants": ["off"]}]

    errors = validate_ruleset(copy.deepcopy(doc))

    assert [e.code for e in errors] == ["prerequisite_cycle"]
    assert errors[0].message.startswith("prerequisite cycle: f0 -> f1199 -> f1198")
