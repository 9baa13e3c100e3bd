"""Property-based tests of bucketing: determinism, monotonic expansion, independence, split."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import mmh3
import pytest
from flagsite_sdk.engine import RulesetInvalid, bucket, compile_ruleset, validate_ruleset
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from .conftest import boolean_flag, rollout, ruleset

REPO = Path(__file__).resolve().parents[3]
ids = st.text(min_size=1, max_size=40)
weights = st.integers(min_value=0, max_value=100_000)


@given(salt=st.text(min_size=1, max_size=30), value=ids)
def test_bucket_is_in_range_and_repeatable(salt: str, value: str) -> None:
    first = bucket(salt, value)

    assert 0 <= first < 100_000
    assert bucket(salt, value) == first


def test_same_answers_in_another_process_with_another_hash_seed() -> None:
    doc = ruleset([boolean_flag("f", defaultServe=rollout(37_000))])
    keys = [f"user-{i}" for i in range(2_000)] + ["Zoë", "東京", ""]
    here = [compile_ruleset(doc).evaluate("f", {"targetingKey": k}).variant for k in keys]
    script = (
        "import json, sys\n"
        "from flagsite_sdk.engine import compile_ruleset\n"
        "doc, keys = json.load(sys.stdin)\n"
        "rs = compile_ruleset(doc)\n"
        "print(json.dumps([rs.evaluate('f', {'targetingKey': k}).variant for k in keys]))\n"
    )
    for seed in ("1", "4242"):
        out = subprocess.run(
            [sys.executable, "-c", script],
            input=json.dumps([doc, keys]),
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, "PYTHONHASHSEED": seed},
            cwd=REPO,
        )
        assert json.loads(out.stdout) == here


@settings(max_examples=30, deadline=None)
@given(low=weights, high=weights, keys=st.lists(ids, min_size=1, max_size=200, unique=True))
def test_raising_the_percentage_keeps_everyone_already_in(
    low: int, high: int, keys: list[str]
) -> None:
    low, high = sorted((low, high))
    at_low = compile_ruleset(ruleset([boolean_flag("f", defaultServe=rollout(low))]))
    at_high = compile_ruleset(ruleset([boolean_flag("f", defaultServe=rollout(high))]))

    for key in keys:
        if at_low.is_enabled("f", {"targetingKey": key}):
            assert at_high.is_enabled("f", {"targetingKey": key})


@settings(max_examples=10, deadline=None)
@given(salt_a=st.text(min_size=1, max_size=20), salt_b=st.text(min_size=1, max_size=20))
def test_flags_with_different_salts_bucket_independently(salt_a: str, salt_b: str) -> None:
    if salt_a == salt_b:
        return
    keys = [f"user-{i}" for i in range(20_000)]
    a = [bucket(salt_a, k) < 50_000 for k in keys]
    b = [bucket(salt_b, k) < 50_000 for k in keys]
    table = [
        [
            sum(x and y for x, y in zip(a, b, strict=True)),
            sum(x and not y for x, y in zip(a, b, strict=True)),
        ],
        [
            sum(y and not x for x, y in zip(a, b, strict=True)),
            sum(not x and not y for x, y in zip(a, b, strict=True)),
        ],
    ]

    # independence of the two 50% populations; alpha 1e-4 keeps false alarms negligible
    assert stats.chi2_contingency(table).pvalue > 1e-4


def test_split_proportions_match_weights_over_100k_contexts() -> None:
    spec = {
        "fallbackVariant": "a",
        "variants": [
            {"variant": "a", "weight": 10_000},
            {"variant": "b", "weight": 25_000},
            {"variant": "c", "weight": 65_000},
        ],
    }
    flag = boolean_flag(
        "split",
        valueType="string",
        variants={"a": "A", "b": "B", "c": "C"},
        offVariant="a",
        defaultServe={"rollout": spec},
    )
    compiled = compile_ruleset(ruleset([flag]))
    counts = {"a": 0, "b": 0, "c": 0}
    for i in range(100_000):
        counts[str(compiled.evaluate("split", {"targetingKey": f"ctx-{i}"}).variant)] += 1

    result = stats.chisquare([counts["a"], counts["b"], counts["c"]], [10_000, 25_000, 65_000])

    assert result.pvalue > 1e-4, counts


def test_fifty_fifty_by_account_over_100k_contexts() -> None:
    compiled = compile_ruleset(
        ruleset([boolean_flag("ab", defaultServe=rollout(50_000, "accountId"))])
    )
    on = sum(compiled.is_enabled("ab", {"accountId": f"acc-{i}"}) for i in range(100_000))

    assert stats.chisquare([on, 100_000 - on]).pvalue > 1e-4


@settings(max_examples=50, deadline=None)
@given(key=ids, other=st.dictionaries(st.text(max_size=10), st.integers() | st.text(max_size=10)))
def test_answer_depends_only_on_the_bucket_by_attribute(key: str, other: dict[str, object]) -> None:
    compiled = compile_ruleset(
        ruleset([boolean_flag("f", defaultServe=rollout(50_000, "accountId"))])
    )
    alone = compiled.evaluate("f", {"accountId": key})
    noisy = compiled.evaluate("f", {**other, "accountId": key})

    assert alone.variant == noisy.variant


@settings(max_examples=100, deadline=None)
@given(
    context=st.dictionaries(
        st.sampled_from(["targetingKey", "accountId", "plan", "country", "age", "email"]),
        st.none()
        | st.booleans()
        | st.integers()
        | st.floats(allow_nan=True)
        | st.text(max_size=20)
        | st.lists(st.text(max_size=5), max_size=3)
        | st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
    )
)
def test_evaluation_never_raises_on_any_context(context: dict[str, object]) -> None:
    from .conftest import load_vector

    doc = load_vector("evaluation.json")["ruleset"]
    compiled = compile_ruleset(doc)

    for key in compiled.flag_keys():
        details = compiled.evaluate(key, context)
        assert details.error_code in (None, "TARGETING_KEY_MISSING")
        assert isinstance(compiled.is_enabled(key, context), bool)


# --- Hostile input: the strategies that found the "internal" errors and the crash -------------

# Text as Python's json and JavaScript produce it: lone surrogates and NUL included.
hostile_text = st.text(alphabet=st.characters(exclude_categories=()), max_size=30)
huge_numbers = st.integers(min_value=2**1024, max_value=10**5000).flatmap(
    lambda n: st.sampled_from([n, -n])
) | st.sampled_from([float("inf"), float("-inf"), float("nan")])
huge_versions = st.integers(min_value=300, max_value=5_000).map(
    lambda digits: f"1.{'7' * digits}.0"
)
long_chains = st.integers(min_value=900, max_value=1_300)


def _seed_document() -> dict[str, Any]:
    from .conftest import load_vector

    return copy.deepcopy(load_vector("evaluation.json")["ruleset"])


def _hostile_edit(
    doc: dict[str, Any], choice: int, text: str, number: int | float, version: str, chain: int
) -> None:
    flag = doc["flags"]["first-match"]
    condition = flag["rules"][0]["conditions"][0]
    edits = [
        lambda: condition.update(operator="lt", values=[number]),
        lambda: condition.update(operator="in", values=["free", number]),
        lambda: condition.update(operator="semver_lt", values=[version]),
        lambda: condition.update(operator="semver_eq", values=[version + "-" + "9" * 4_400]),
        lambda: condition.update(operator="matches", values=[text]),
        lambda: condition.update(values=[text]),
        lambda: flag.update(salt=text or "\ud800"),
        lambda: flag["variants"].update({text or "\x00": True}),
        lambda: flag["rules"][0].update(id=text or "\udfff"),
        lambda: doc["flags"]["number-flag"]["variants"].update(big=number),
        lambda: flag.update(version=number),
        lambda: doc["flags"].update(_chain_flags(chain)),
    ]
    edits[choice % len(edits)]()


def _chain_flags(length: int) -> dict[str, Any]:
    flags = {"c0": boolean_flag("c0")}
    for i in range(1, length):
        flags[f"c{i}"] = boolean_flag(
            f"c{i}", prerequisites=[{"flag": f"c{i - 1}", "variants": ["off"]}]
        )
    return flags


@settings(max_examples=120, deadline=None)
@given(
    choice=st.integers(min_value=0, max_value=11),
    text=hostile_text,
    number=huge_numbers,
    version=huge_versions,
    chain=long_chains,
)
def test_the_validator_never_says_internal_and_the_compiler_raises_only_ruleset_invalid(
    choice: int, text: str, number: int | float, version: str, chain: int
) -> None:
    doc = _seed_document()
    _hostile_edit(doc, choice, text, number, version, chain)

    errors = validate_ruleset(doc)

    assert all(e.code != "internal" for e in errors), errors
    if errors:
        with pytest.raises(RulesetInvalid) as invalid:
            compile_ruleset(doc)
        assert invalid.value.errors == errors
    else:
        compiled = compile_ruleset(doc)
        assert compiled.evaluate("first-match", {"plan": text}).reason is not None


@settings(max_examples=150, deadline=None)
@given(
    context=st.dictionaries(
        st.sampled_from(["targetingKey", "userId", "accountId", "plan", "email", "name"]),
        hostile_text
        | st.text(min_size=4_090, max_size=4_100)
        | st.lists(hostile_text, max_size=3)
        | st.integers(min_value=-(10**400), max_value=10**400),
    )
)
def test_hostile_contexts_evaluate_without_raising(context: dict[str, object]) -> None:
    compiled = compile_ruleset(_seed_document())

    for key in compiled.flag_keys():
        details = compiled.evaluate(key, context)
        assert details.error_code in (None, "TARGETING_KEY_MISSING"), details


@given(salt=hostile_text.filter(bool), value=hostile_text)
def test_bucketing_any_text_is_the_bucketing_of_its_well_formed_form(salt: str, value: str) -> None:
    clean = f"{salt}.{value}".encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
    expected = mmh3.hash(clean.encode("utf-8"), 0, False) % 100_000

    assert bucket(salt, value) == expected
