"""The fast shape check never accepts what ruleset.schema.json rejects."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from flagsite_sdk.engine.shape import has_schema_shape
from flagsite_sdk.engine.validate import schema_errors
from hypothesis import given, settings
from hypothesis import strategies as st

from .conftest import load_vector
from .test_validation import CASES, base_doc

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 200_000) | st.floats() | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=6,
)


def nodes(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [path]
    if isinstance(value, dict):
        for k, v in value.items():
            found += nodes(v, (*path, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            found += nodes(v, (*path, i))
    return found


def valid_documents() -> list[dict[str, Any]]:
    return [base_doc(), load_vector("evaluation.json")["ruleset"]]


@pytest.mark.parametrize("doc", valid_documents())
def test_valid_documents_have_the_shape(doc: dict[str, Any]) -> None:
    assert schema_errors(doc) == []
    assert has_schema_shape(doc)


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_shape_agrees_on_the_validation_cases(case: Any) -> None:
    doc = base_doc()
    case[1](doc)

    if has_schema_shape(doc):
        assert schema_errors(doc) == []


@settings(max_examples=400, deadline=None)
@given(data=st.data(), replacement=json_values, action=st.sampled_from(["set", "drop", "add"]))
def test_random_damage_is_never_accepted_wrongly(data: Any, replacement: Any, action: str) -> None:
    doc = copy.deepcopy(data.draw(st.sampled_from(valid_documents())))
    path = data.draw(st.sampled_from(nodes(doc)[1:]))
    parent = doc
    for part in path[:-1]:
        parent = parent[part]
    last = path[-1]
    if action == "set":
        parent[last] = replacement
    elif action == "drop":
        del parent[last]
    elif isinstance(parent[last], dict):
        parent[last][data.draw(st.text(max_size=12))] = replacement

    if has_schema_shape(doc):
        assert schema_errors(doc) == [], path
