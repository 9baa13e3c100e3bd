"""One definition of a key: the schema's pattern, which the engine exports and the server uses."""

from __future__ import annotations

import json
from importlib import resources

import pytest
from flagsite_sdk.engine import KEY_MAX_LENGTH, KEY_PATTERN, is_key, key_problem, validate_ruleset
from hypothesis import example, given
from hypothesis import strategies as st

from .conftest import boolean_flag, ruleset

# Letters, digits, the allowed punctuation, and the characters people try: dot, space, slash.
key_like = st.text(
    alphabet=st.sampled_from("aZ09_-.: /é\t") | st.characters(codec="utf-8"), max_size=140
)


def test_the_pattern_is_the_one_in_the_schema() -> None:
    text = resources.files("flagsite_sdk.engine").joinpath("ruleset.schema.json").read_text()
    assert json.loads(text)["$defs"]["key"]["pattern"] == KEY_PATTERN
    assert is_key("k" * KEY_MAX_LENGTH)
    assert not is_key("k" * (KEY_MAX_LENGTH + 1))


@given(key_like)
@example("checkout.v2")
@example("checkout-v2")
@example("ok\n")
def test_a_key_is_valid_exactly_when_the_engine_accepts_a_flag_with_it(key: str) -> None:
    engine_accepts = validate_ruleset(ruleset([boolean_flag(key)])) == []
    if not key.endswith("\n"):  # jsonschema's pattern search lets "…\n" through; we do not
        assert is_key(key) == engine_accepts
    else:
        assert not is_key(key)
    assert (key_problem(key) is None) == is_key(key)


@pytest.mark.parametrize(
    ("key", "says"),
    [
        ("checkout.v2", "'.' is not allowed"),
        ("checkout v2", "' ' is not allowed"),
        ("-checkout", "must start with a letter or digit"),
        ("", "cannot be empty"),
        ("k" * 129, "129 characters long"),
    ],
)
def test_the_problem_is_said_in_words(key: str, says: str) -> None:
    problem = key_problem(key)
    assert problem is not None
    assert says in problem
    assert "no dots" in problem
