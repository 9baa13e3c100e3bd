"""The explainer's trace agrees with the engine's own answer on every vector and any context."""

from __future__ import annotations

from typing import Any

import pytest
from flagsite_sdk.engine import compile_ruleset
from flagsite_sdk.engine.explain import Explainer, Explanation
from hypothesis import given, settings
from hypothesis import strategies as st

from .conftest import boolean_flag, load_vector, ruleset

EVALUATION = load_vector("evaluation.json")
OPERATORS = load_vector("operators.json")
COMPILED = compile_ruleset(EVALUATION["ruleset"])
EXPLAINER = Explainer(COMPILED)


def assert_consistent(explanation: Explanation) -> None:
    details = explanation.details
    matched = [r for r in explanation.rules if r.matched]
    assert len(matched) <= 1
    if explanation.served_by == "rule":
        assert details.rule_id == matched[0].rule_id
    else:
        assert not matched
    flag = COMPILED.flag(details.flag_key)
    if explanation.served_by == "off" and flag is not None:
        assert details.variant == flag.off_variant
    rollout = explanation.rollout
    if rollout is not None and rollout.bucket is not None:
        owner = [r.variant for r in rollout.ranges if r.start <= rollout.bucket < r.end]
        assert owner == [details.variant]
    if rollout is not None and rollout.bucket is None:
        assert details.variant == rollout.fallback_variant


@pytest.mark.parametrize("case", EVALUATION["cases"], ids=lambda c: c["name"])
def test_explanations_of_the_vectors(case: dict[str, Any]) -> None:
    explanation = EXPLAINER.explain(case["flag"], case["context"], case["default"])
    assert explanation.details == COMPILED.evaluate(case["flag"], case["context"], case["default"])
    assert_consistent(explanation)


@pytest.mark.parametrize("case", OPERATORS["cases"], ids=lambda c: c["name"])
def test_each_condition_result_is_the_engines(case: dict[str, Any]) -> None:
    rule = {"id": "rule", "conditions": [case["condition"]], "serve": {"variant": "on"}}
    compiled = compile_ruleset(ruleset([boolean_flag("f", rules=[rule])], OPERATORS["segments"]))
    explanation = Explainer(compiled).explain("f", case["context"], False)
    (condition,) = explanation.rules[0].conditions
    assert condition.result is (None if case.get("problem") else case["expect"])
    assert explanation.rules[0].matched is case["expect"]


contexts = st.dictionaries(
    st.sampled_from(["targetingKey", "userId", "accountId", "plan", "country", "age", "email"]),
    st.one_of(
        st.sampled_from(["free", "pro", "US", "UK", "GB", "acc-7", "a@acme.com", ""]),
        st.integers(-5, 200),
        st.booleans(),
        st.none(),
    ),
)


@settings(max_examples=300)
@given(context=contexts, key=st.sampled_from(sorted(EVALUATION["ruleset"]["flags"])))
def test_any_context_explains_consistently(context: dict[str, Any], key: str) -> None:
    explanation = EXPLAINER.explain(key, context)
    assert explanation.details == COMPILED.evaluate(key, context)
    assert_consistent(explanation)


@pytest.mark.parametrize("case", load_vector("forward.json")["cases"], ids=lambda c: c["name"])
def test_a_lenient_compile_is_explained_too(case: dict[str, Any]) -> None:
    """Flags set aside by a lenient compile (the server serves stored documents that way) are
    explained by their error alone; the others as usual."""
    compiled = compile_ruleset(load_vector("forward.json")["ruleset"], lenient=True)
    explanation = Explainer(compiled).explain(case["flag"], case["context"], case["default"])

    assert explanation.details == compiled.evaluate(case["flag"], case["context"], case["default"])
    if case["flag"] in compiled.broken_flags:
        assert (explanation.rules, explanation.served_by) == ((), None)
