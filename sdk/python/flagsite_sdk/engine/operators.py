"""Condition operators: their descriptions and their compilation into closures.

A compiled condition takes the context and returns a bool. A context value of the
wrong type raises ConditionProblem, which the rule loop turns into "condition
false" plus a note on the evaluation details; it never reaches the caller.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from .coerce import instant_of, parse_instant, parse_semver
from .grammar import NUMBER_LIMIT, in_number_range
from .regex import compile_pattern
from .text import MAX_VALUE_LENGTH, utf8, well_formed

Context = Mapping[str, Any]
Test = Callable[[Any], bool]
Condition = Callable[[Context], bool]

OPERATORS: Mapping[str, str] = {
    "equals": "is equal to the value",
    "not_equals": "is not equal to the value",
    "in": "is one of the values",
    "not_in": "is none of the values",
    "contains": "contains one of the values (substring, or element of a list)",
    "starts_with": "starts with one of the values",
    "ends_with": "ends with one of the values",
    "matches": "matches one of the regular expressions",
    "lt": "number is less than the value",
    "lte": "number is less than or equal to the value",
    "gt": "number is greater than the value",
    "gte": "number is greater than or equal to the value",
    "semver_eq": "semantic version is equal to the value",
    "semver_lt": "semantic version is lower than the value",
    "semver_gt": "semantic version is higher than the value",
    "before": "date is before the value",
    "after": "date is after the value",
    "exists": "attribute is present",
    "not_exists": "attribute is absent",
    "in_segment": "context is in one of the segments",
    "not_in_segment": "context is in none of the segments",
    "email_domain_in": "email address belongs to one of the domains",
}

SEGMENT_OPERATORS = frozenset({"in_segment", "not_in_segment"})
NO_OPERAND_OPERATORS = frozenset({"exists", "not_exists"})
SINGLE_OPERAND_OPERATORS = frozenset(
    {"equals", "not_equals", "lt", "lte", "gt", "gte", "semver_eq", "semver_lt", "semver_gt"}
    | {"before", "after"}
)
STRING_OPERATORS = frozenset(
    {"contains", "starts_with", "ends_with", "matches", "email_domain_in"}
    | {"semver_eq", "semver_lt", "semver_gt", "before", "after"}
)
NUMBER_OPERATORS = frozenset({"lt", "lte", "gt", "gte"})
SCALAR_OPERATORS = frozenset({"equals", "not_equals", "in", "not_in"})
CASE_OPERATORS = frozenset(
    {"equals", "not_equals", "in", "not_in", "contains", "starts_with", "ends_with", "matches"}
)
TARGETING_KEY = "targetingKey"
TARGETING_KEY_ALIAS = "userId"


class ConditionProblem(Exception):  # noqa: N818 - it is not an error, only a false
    """A context value could not be tested; the condition counts as false."""


NUMBER_RANGE_TEXT = f"the number range \u00b1{NUMBER_LIMIT} (2^53-1)"


def operand_problem(operator: str, values: list[Any]) -> tuple[int | None, str] | None:
    """Why `values` do not suit `operator`, or None (regexes are checked apart).

    The problem comes with the index of the value at fault, or None when it is the list as a
    whole (wrong count or types). Dates, versions and numbers must be in the operand grammar
    (grammar.py, docs/ruleset.md), which the Node engine reads exactly alike.
    """
    if operator in NO_OPERAND_OPERATORS:
        return (None, "takes no values") if values else None
    if operator in SINGLE_OPERAND_OPERATORS and len(values) != 1:
        return None, "takes exactly one value"
    string_operands = operator in SEGMENT_OPERATORS or operator in STRING_OPERATORS
    if string_operands and not all(isinstance(v, str) for v in values):
        return None, "values must be strings"
    if operator in NUMBER_OPERATORS and not _is_number(values[0]):
        return None, "value must be a number"
    for i, v in enumerate(values):
        if _is_number(v) and not in_number_range(v):
            return i, f"{_clip(repr(v))} is outside {NUMBER_RANGE_TEXT}"
    if operator in SCALAR_OPERATORS and not all(
        isinstance(v, str | int | float) and v == v for v in values
    ):
        return None, "values must be strings, numbers or booleans"
    if operator.startswith("semver_") and parse_semver(values[0]) is None:
        return 0, (
            f"{_clip(repr(values[0]))} is not a semantic version: MAJOR.MINOR.PATCH with "
            "optional -pre-release and +build, ASCII digits without leading zeros"
        )
    if operator in ("before", "after") and parse_instant(values[0]) is None:
        return 0, (
            f"{_clip(repr(values[0]))} is not an RFC 3339 date (YYYY-MM-DD) or date-time "
            "(YYYY-MM-DDTHH:MM:SS[.fraction] and Z or \u00b1HH:MM)"
        )
    return None


def _clip(text: str) -> str:
    return text if len(text) <= 60 else text[:57] + "..."


def _outside_range(label: str, attr: str) -> ConditionProblem:
    # Two JSON readers may hold different values for such a number (JavaScript rounds it to
    # a double, Python keeps it exact), so no engine compares it: the condition is false.
    return ConditionProblem(
        f"{label}: attribute {attr!r} is a number outside {NUMBER_RANGE_TEXT}, "
        "which no condition matches"
    )


def _is_number(v: Any) -> bool:
    t = type(v)
    return (t is int or t is float) and v == v


def _kind(v: Any) -> str:
    t = type(v)
    if t is str:
        return "string"
    if t is bool:
        return "boolean"
    if t is int or t is float:
        return "number"
    return t.__name__


def compile_condition(
    cond: Mapping[str, Any], label: str, segments: Mapping[str, Condition]
) -> Condition:
    """Closure for one validated condition; `label` names it in notes."""
    op: str = cond["operator"]
    values: list[Any] = list(cond.get("values", []))
    negate = bool(cond.get("negate", False))
    if op in SEGMENT_OPERATORS:
        return _segment_condition(op, [segments[k] for k in values], negate)
    attr: str = cond["attribute"]
    if op in NO_OPERAND_OPERATORS:
        return _presence_condition(attr, op == "exists", negate)
    ci = bool(cond.get("caseInsensitive", False)) and op in CASE_OPERATORS
    if op in ("in", "not_in", "equals", "not_equals") and not ci:
        return _membership_condition(
            attr, values, (op in ("not_in", "not_equals")) is not negate, label
        )
    test = _make_test(op, values, ci, attr, label)
    return _generic_condition(attr, test, negate)


def _getter_attrs(attr: str) -> tuple[str, str | None]:
    return (attr, TARGETING_KEY_ALIAS) if attr == TARGETING_KEY else (attr, None)


def _generic_condition(attr: str, test: Test, negate: bool) -> Condition:
    _, alias = _getter_attrs(attr)
    if alias is None:

        def condition(ctx: Context) -> bool:
            v = ctx.get(attr)
            if v is None or (type(v) is str and len(v) > MAX_VALUE_LENGTH):
                return False
            return test(v) is not negate

        return condition

    def keyed_condition(ctx: Context) -> bool:
        v = ctx.get(attr)
        if v is None or (type(v) is str and len(v) > MAX_VALUE_LENGTH):
            v = ctx.get(alias)
            if v is None or (type(v) is str and len(v) > MAX_VALUE_LENGTH):
                return False
        return test(v) is not negate

    return keyed_condition


def _membership_condition(attr: str, values: list[Any], invert: bool, label: str) -> Condition:
    """equals / in and their negations: the allowlist hot path, one set lookup."""
    strings = frozenset(well_formed(v) for v in values if type(v) is str)
    # only an operand holding U+FFFD can equal a context string with a lone surrogate
    replaced = any("\ufffd" in v for v in strings)
    numbers = frozenset(v for v in values if type(v) is int or type(v) is float)
    booleans = frozenset(v for v in values if type(v) is bool)
    kinds = {_kind(v) for v in values}
    compared = " or ".join(sorted(kinds))

    def classify(v: Any) -> bool:
        t = type(v)
        if t is str:
            pool: frozenset[Any] = strings
        elif t is bool:
            pool = booleans
        elif t is int or t is float:
            pool = numbers
        else:
            raise ConditionProblem(
                f"{label}: attribute {attr!r} is a {_kind(v)}, the condition compares "
                "strings, numbers or booleans"
            )
        if values and _kind(v) not in kinds:
            raise ConditionProblem(
                f"{label}: attribute {attr!r} is a {_kind(v)}, the condition compares {compared}"
            )
        if t is str:
            return text_member(v)
        if pool is numbers and not in_number_range(v):
            raise _outside_range(label, attr)
        return (v in pool) is not invert

    def text_member(v: str) -> bool:
        hit = v in strings
        if not hit and replaced and not v.isascii():
            hit = well_formed(v) in strings
        return hit is not invert

    _, alias = _getter_attrs(attr)
    if alias is None:

        def condition(ctx: Context) -> bool:
            v = ctx.get(attr)
            if type(v) is str:
                if len(v) > MAX_VALUE_LENGTH:
                    return False
                if strings:
                    return text_member(v)
            elif v is None:
                return False
            return classify(v)

        return condition

    def keyed_condition(ctx: Context) -> bool:
        v = ctx.get(attr)
        if v is None or (type(v) is str and len(v) > MAX_VALUE_LENGTH):
            v = ctx.get(alias)
            if v is None or (type(v) is str and len(v) > MAX_VALUE_LENGTH):
                return False
        if type(v) is str and strings:
            return text_member(v)
        return classify(v)

    return keyed_condition


def _presence_condition(attr: str, want_present: bool, negate: bool) -> Condition:
    expected = want_present is not negate
    _, alias = _getter_attrs(attr)

    def condition(ctx: Context) -> bool:
        v = ctx.get(attr)
        if alias is not None and (v is None or (type(v) is str and len(v) > MAX_VALUE_LENGTH)):
            v = ctx.get(alias)
        present = v is not None and (type(v) is not str or len(v) <= MAX_VALUE_LENGTH)
        return present is expected

    return condition


def _segment_condition(op: str, members: list[Condition], negate: bool) -> Condition:
    want_in = (op == "in_segment") is not negate

    def condition(ctx: Context) -> bool:
        for member in members:
            if member(ctx):
                return want_in
        return not want_in

    return condition


def _make_test(op: str, values: list[Any], ci: bool, attr: str, label: str) -> Test:
    def wrong(v: Any, needs: str) -> ConditionProblem:
        return ConditionProblem(
            f"{label}: attribute {attr!r} is a {_kind(v)}, operator {op} needs {needs}"
        )

    if op in ("equals", "not_equals", "in", "not_in"):
        # only reached with caseInsensitive: strings compare casefolded
        folded = frozenset(well_formed(v).casefold() if type(v) is str else v for v in values)
        kinds = {_kind(v) for v in values}
        invert = op in ("not_equals", "not_in")

        def member(v: Any) -> bool:
            kind = _kind(v)
            if kind not in ("string", "number", "boolean") or (values and kind not in kinds):
                raise wrong(v, " or ".join(sorted(kinds)) or "a scalar")
            key = well_formed(v).casefold() if kind == "string" else v
            if kind == "number":
                if not in_number_range(v):
                    raise _outside_range(label, attr)
                return any(_kind(x) == "number" and x == v for x in values) is not invert
            if kind == "boolean":
                return any(x is v for x in values) is not invert
            return (key in folded) is not invert

        return member

    if op in ("contains", "starts_with", "ends_with"):
        needles = tuple(well_formed(v).casefold() if ci else well_formed(v) for v in values)

        def text_test(v: Any) -> bool:
            if type(v) is str:
                s = well_formed(v).casefold() if ci else well_formed(v)
                if op == "starts_with":
                    return s.startswith(needles)
                if op == "ends_with":
                    return s.endswith(needles)
                return any(n in s for n in needles)
            if op == "contains" and isinstance(v, list | tuple):
                items = {
                    well_formed(x).casefold() if ci else well_formed(x)
                    for x in v
                    if type(x) is str and len(x) <= MAX_VALUE_LENGTH
                }
                return any(n in items for n in needles)
            raise wrong(v, "a string" if op != "contains" else "a string or a list")

        return text_test

    if op == "matches":
        patterns = tuple(compile_pattern(p, case_insensitive=ci) for p in values)

        def regex_test(v: Any) -> bool:
            if type(v) is not str:
                raise wrong(v, "a string")
            text = utf8(v)  # re2 is native code: no lone surrogate may reach it
            return any(p.search(text) is not None for p in patterns)

        return regex_test

    if op in NUMBER_OPERATORS:
        return _number_test(op, values[0], wrong, lambda: _outside_range(label, attr))

    if op.startswith("semver_"):
        return _semver_test(op, values[0], wrong)

    if op in ("before", "after"):
        bound = parse_instant(values[0])
        assert bound is not None  # validated at save
        before = op == "before"

        def date_test(v: Any) -> bool:
            t = instant_of(v)
            if t is None:
                raise wrong(v, "an RFC 3339 date or date-time, epoch milliseconds or a datetime")
            return t < bound if before else t > bound

        return date_test

    if op == "email_domain_in":
        domains = frozenset(well_formed(v).lstrip("@").casefold() for v in values)

        def email_test(v: Any) -> bool:
            if type(v) is not str or "@" not in v:
                raise wrong(v, "an email address")
            return well_formed(v).rpartition("@")[2].casefold() in domains

        return email_test

    raise ValueError(f"unknown operator {op!r}")  # unreachable after validation


def _number_test(
    op: str,
    bound: int | float,
    wrong: Callable[[Any, str], ConditionProblem],
    outside: Callable[[], ConditionProblem],
) -> Test:
    # Both sides are within the number range, where ints and floats compare exactly in
    # Python as doubles do in JavaScript.
    def number_test(v: Any) -> bool:
        t = type(v)
        if t is not int and t is not float:
            raise wrong(v, "a number")
        if not in_number_range(v):
            raise outside()
        if op == "lt":
            return bool(v < bound)
        if op == "lte":
            return bool(v <= bound)
        if op == "gt":
            return bool(v > bound)
        return bool(v >= bound)

    return number_test


def _semver_test(op: str, operand: str, wrong: Callable[[Any, str], ConditionProblem]) -> Test:
    bound = parse_semver(operand)
    assert bound is not None  # validated at save

    def semver_test(v: Any) -> bool:
        key = parse_semver(v) if type(v) is str else None
        if key is None:
            raise wrong(v, "a semantic version string")
        if op == "semver_eq":
            return key == bound
        if op == "semver_lt":
            return key < bound
        return key > bound

    return semver_test
