"""validate_ruleset: JSON Schema first, then the semantic checks the schema cannot express."""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from functools import cache
from importlib import resources
from typing import Any

from jsonschema import Draft202012Validator, ValidationError

from .operators import SEGMENT_OPERATORS, operand_problem
from .regex import regex_problem
from .shape import has_schema_shape
from .text import is_valid_text
from .types import BUCKETS, RulesetError

# Evaluating a flag evaluates its prerequisites first, one nested call per link, so a
# chain deeper than this is refused rather than left to overflow the stack.
MAX_PREREQUISITE_DEPTH = 64
_DOUBLE_MAX = sys.float_info.max

_VALUE_CHECKS: dict[str, Callable[[Any], bool]] = {
    "boolean": lambda v: type(v) is bool,
    "string": lambda v: type(v) is str,
    "number": lambda v: type(v) in (int, float) and _within_double(v),
    "json": lambda v: True,
}


@cache
def ruleset_schema() -> dict[str, Any]:
    """The JSON Schema shipped with the package (ruleset.schema.json)."""
    text = resources.files(__package__).joinpath("ruleset.schema.json").read_text("utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema


@cache
def _validator() -> Draft202012Validator:
    return Draft202012Validator(ruleset_schema())


def _within_double(v: int | float) -> bool:
    # math.isfinite(10**400) raises OverflowError; an int compares exactly with a float
    return -_DOUBLE_MAX <= v <= _DOUBLE_MAX


def _shown(value: Any) -> str:
    """repr for a message, cut short (repr of a 5,000-digit int even raises)."""
    if type(value) is int and not _within_double(value):
        return "a number out of range"
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def format_path(parts: Sequence[str | int]) -> str:
    """`flags.x.rules[2].conditions[0].operator` from ("flags", "x", "rules", 2, ...)."""
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else part
    return out


def validate_ruleset(doc: Mapping[str, Any]) -> list[RulesetError]:
    """Every problem in `doc`, each with its path; an empty list means valid. Never raises."""
    try:
        return _validate(doc)
    except Exception as exc:  # a validator bug must not crash the admin's save
        return [RulesetError("", f"validation failed: {exc!r}", "internal")]


def _validate(doc: Mapping[str, Any]) -> list[RulesetError]:
    if not isinstance(doc, Mapping):
        return [RulesetError("", "the ruleset must be a JSON object", "schema.type")]
    out_of_range = list(_number_range_errors(doc))
    if out_of_range:
        return out_of_range  # jsonschema itself fails on such numbers, so stop here
    if has_schema_shape(doc):
        errors: list[RulesetError] = []
    else:
        errors = schema_errors(doc)
    broken = {tuple(e.path.split(".")[:2]) for e in errors}
    if any("." not in e.path for e in errors):
        return errors  # the top level is wrong; cross-references would only add noise
    flags: Mapping[str, Any] = doc["flags"]
    segments: Mapping[str, Any] = doc["segments"]
    good_flags = {k: f for k, f in flags.items() if ("flags", k.split(".")[0]) not in broken}
    for key, seg in segments.items():
        if ("segments", key) not in broken:
            errors.extend(_segment_errors(key, seg))
    for key, flag in good_flags.items():
        errors.extend(_flag_errors(key, flag, flags, segments))
    errors.extend(_cycle_errors(good_flags))
    if not any(e.code == "prerequisite_cycle" for e in errors):
        errors.extend(_depth_errors(good_flags))
    return errors


def _number_range_errors(doc: Mapping[str, Any]) -> Iterator[RulesetError]:
    """Numbers no double can hold (10**400, infinities, NaN), walked without recursion."""
    pending: list[tuple[list[str | int], Any]] = [([], doc)]
    while pending:
        path, value = pending.pop()
        t = type(value)
        if t is dict or isinstance(value, Mapping):
            pending.extend(([*path, str(k)], v) for k, v in value.items())
        elif t is list or t is tuple:
            pending.extend(([*path, i], v) for i, v in enumerate(value))
        elif (t is int and not _within_double(value)) or (t is float and not math.isfinite(value)):
            yield RulesetError(
                format_path(path),
                "number out of range: numbers must be finite and fit in a double",
                "number_range",
            )


def schema_errors(doc: Any) -> list[RulesetError]:
    """Errors from ruleset.schema.json alone (jsonschema; slow, about 0.2 ms per flag)."""
    return [e for err in _validator().iter_errors(doc) for e in _schema_errors(err)]


def _schema_errors(err: ValidationError) -> Iterator[RulesetError]:
    path = list(err.absolute_path)
    if err.validator == "required":
        required: list[str] = list(err.validator_value)  # type: ignore[arg-type]
        for name in required:
            if isinstance(err.instance, Mapping) and name not in err.instance:
                yield RulesetError(format_path([*path, name]), "is required", "schema.required")
        return
    if err.validator == "additionalProperties" and isinstance(err.instance, Mapping):
        known = err.schema.get("properties", {}) if isinstance(err.schema, Mapping) else {}
        for name in err.instance:
            if name not in known:
                yield RulesetError(
                    format_path([*path, name]), "unknown property", "schema.additionalProperties"
                )
        return
    if err.validator == "enum" and path and path[-1] == "operator":
        yield RulesetError(
            format_path(path), f"unknown operator {err.instance!r}", "unknown_operator"
        )
        return
    yield RulesetError(format_path(path), err.message, f"schema.{err.validator}")


def _flag_errors(
    key: str, flag: Mapping[str, Any], flags: Mapping[str, Any], segments: Mapping[str, Any]
) -> Iterator[RulesetError]:
    base: list[str | int] = ["flags", key]

    def err(parts: Sequence[str | int], message: str, code: str) -> RulesetError:
        return RulesetError(format_path([*base, *parts]), message, code)

    if flag["key"] != key or not is_valid_text(key):
        yield err(
            ["key"], f"key {flag['key']!r} differs from its entry name {key!r}", "key_mismatch"
        )
    variants: Mapping[str, Any] = flag["variants"]
    check = _VALUE_CHECKS[flag["valueType"]]
    for name, value in variants.items():
        if not check(value):
            yield err(
                ["variants", name],
                f"value {_shown(value)} is not a {flag['valueType']}",
                "value_type",
            )
    if not is_valid_text(flag["salt"]):
        yield err(["salt"], _BAD_TEXT, "invalid_text")
    for name in variants:
        if not is_valid_text(name):
            yield err(["variants", name], f"variant name {_BAD_TEXT}", "invalid_text")
    if flag["offVariant"] not in variants:
        yield err(["offVariant"], f"unknown variant {flag['offVariant']!r}", "unknown_variant")
    for i, pre in enumerate(flag.get("prerequisites", [])):
        target = flags.get(pre["flag"])
        if target is None:
            yield err(
                ["prerequisites", i, "flag"],
                f"unknown flag {pre['flag']!r}",
                "unknown_prerequisite",
            )
            continue
        target_variants = target.get("variants") if isinstance(target, Mapping) else None
        for j, name in enumerate(pre["variants"]):
            if isinstance(target_variants, Mapping) and name not in target_variants:
                yield err(
                    ["prerequisites", i, "variants", j],
                    f"flag {pre['flag']!r} has no variant {name!r}",
                    "unknown_variant",
                )
    seen_ids: set[str] = set()
    for i, rule in enumerate(flag["rules"]):
        if not is_valid_text(rule["id"]):
            yield err(["rules", i, "id"], f"rule id {_BAD_TEXT}", "invalid_text")
        if rule["id"] in seen_ids:
            yield err(["rules", i, "id"], f"duplicate rule id {rule['id']!r}", "duplicate_rule_id")
        seen_ids.add(rule["id"])
        for j, cond in enumerate(rule["conditions"]):
            yield from _condition_errors([*base, "rules", i, "conditions", j], cond, segments)
        yield from _serve_errors([*base, "rules", i, "serve"], rule["serve"], variants)
    yield from _serve_errors([*base, "defaultServe"], flag["defaultServe"], variants)


def _serve_errors(
    base: list[str | int], serve: Mapping[str, Any], variants: Mapping[str, Any]
) -> Iterator[RulesetError]:
    if "variant" in serve:
        if serve["variant"] not in variants:
            yield RulesetError(
                format_path([*base, "variant"]),
                f"unknown variant {serve['variant']!r}",
                "unknown_variant",
            )
        return
    rollout = serve["rollout"]
    seen: set[str] = set()
    for i, part in enumerate(rollout["variants"]):
        if part["variant"] not in variants:
            yield RulesetError(
                format_path([*base, "rollout", "variants", i, "variant"]),
                f"unknown variant {part['variant']!r}",
                "unknown_variant",
            )
        elif part["variant"] in seen:
            yield RulesetError(
                format_path([*base, "rollout", "variants", i, "variant"]),
                f"variant {part['variant']!r} appears twice in the rollout",
                "duplicate_variant",
            )
        seen.add(part["variant"])
    total = sum(part["weight"] for part in rollout["variants"])
    if total != BUCKETS:
        yield RulesetError(
            format_path([*base, "rollout", "variants"]),
            f"weights sum to {total}, they must sum to {BUCKETS} (100%)",
            "weights_sum",
        )
    fallback = rollout.get("fallbackVariant")
    if fallback is not None and fallback not in variants:
        yield RulesetError(
            format_path([*base, "rollout", "fallbackVariant"]),
            f"unknown variant {fallback!r}",
            "unknown_variant",
        )


def _condition_errors(
    base: list[str | int],
    cond: Mapping[str, Any],
    segments: Mapping[str, Any] | None,
) -> Iterator[RulesetError]:
    op = cond["operator"]
    values = cond.get("values", [])
    if op in SEGMENT_OPERATORS:
        if segments is None:
            yield RulesetError(
                format_path([*base, "operator"]),
                "segment rules cannot refer to other segments",
                "segment_in_segment",
            )
            return
        if not values:
            yield RulesetError(
                format_path([*base, "values"]), "needs at least one segment", "invalid_operand"
            )
        for m, name in enumerate(values):
            if name not in segments:
                yield RulesetError(
                    format_path([*base, "values", m]),
                    f"unknown segment {name!r}",
                    "unknown_segment",
                )
        return
    problem = operand_problem(op, values)
    if problem is not None:
        index, message = problem
        where: list[str | int] = [*base, "values"] if index is None else [*base, "values", index]
        yield RulesetError(format_path(where), f"{op}: {message}", "invalid_operand")
        return
    if op == "matches":
        for m, pattern in enumerate(values):
            found = regex_problem(pattern)
            if found is not None:
                yield RulesetError(format_path([*base, "values", m]), found[1], found[0])


_BAD_TEXT = "contains a lone surrogate or a NUL character"


def _segment_errors(key: str, seg: Mapping[str, Any]) -> Iterator[RulesetError]:
    base: list[str | int] = ["segments", key]
    if seg["key"] != key:
        yield RulesetError(
            format_path([*base, "key"]),
            f"key {seg['key']!r} differs from its entry name {key!r}",
            "key_mismatch",
        )
    seen_ids: set[str] = set()
    for i, rule in enumerate(seg.get("rules", [])):
        if not is_valid_text(rule["id"]):
            yield RulesetError(
                format_path([*base, "rules", i, "id"]), f"rule id {_BAD_TEXT}", "invalid_text"
            )
        if rule["id"] in seen_ids:
            yield RulesetError(
                format_path([*base, "rules", i, "id"]),
                f"duplicate rule id {rule['id']!r}",
                "duplicate_rule_id",
            )
        seen_ids.add(rule["id"])
        for j, cond in enumerate(rule["conditions"]):
            yield from _condition_errors([*base, "rules", i, "conditions", j], cond, None)


def _cycle_errors(flags: Mapping[str, Any]) -> Iterator[RulesetError]:
    """One error per prerequisite edge that closes a cycle (depth-first search).

    The search keeps its own stack instead of recursing, so a chain of thousands of
    flags is walked like any other.
    """
    state: dict[str, int] = {}  # 1 = on the current path, 2 = finished
    path: list[str] = []
    position: dict[str, int] = {}  # index in `path` of each flag on it
    found: list[RulesetError] = []
    for root in sorted(flags):
        if root in state:
            continue
        state[root] = 1
        position[root] = 0
        path.append(root)
        edges: list[Iterator[tuple[int, Any]]] = [enumerate(_prerequisites(flags[root]))]
        while edges:
            key = path[-1]
            step = next(edges[-1], None)
            if step is None:
                edges.pop()
                path.pop()
                del position[key]
                state[key] = 2
                continue
            i, pre = step
            target = pre["flag"]
            if target not in flags:
                continue
            if state.get(target) == 1:
                loop = [*path[position[target] :], target]
                found.append(
                    RulesetError(
                        format_path(["flags", key, "prerequisites", i, "flag"]),
                        "prerequisite cycle: " + " -> ".join(loop),
                        "prerequisite_cycle",
                    )
                )
            elif target not in state:
                state[target] = 1
                position[target] = len(path)
                path.append(target)
                edges.append(enumerate(_prerequisites(flags[target])))
    yield from found


def _depth_errors(flags: Mapping[str, Any]) -> Iterator[RulesetError]:
    """Flags whose prerequisite chain is longer than MAX_PREREQUISITE_DEPTH (acyclic input)."""
    depth: dict[str, int] = {}
    for key in prerequisite_order(flags):
        targets = [p["flag"] for p in _prerequisites(flags[key]) if p["flag"] in flags]
        depth[key] = 1 + max((depth[t] for t in targets), default=0)
        if depth[key] > MAX_PREREQUISITE_DEPTH and all(
            depth[t] <= MAX_PREREQUISITE_DEPTH for t in targets
        ):
            yield RulesetError(
                format_path(["flags", key, "prerequisites"]),
                f"prerequisite chain longer than {MAX_PREREQUISITE_DEPTH} flags",
                "prerequisite_depth",
            )


def _prerequisites(flag: Mapping[str, Any]) -> list[Any]:
    found = flag.get("prerequisites", [])
    return found if isinstance(found, list) else []


def prerequisite_order(flags: Mapping[str, Any]) -> list[str]:
    """Flag keys with every prerequisite before the flags needing it (input acyclic).

    Depth-first with an explicit stack, so long chains cannot exhaust Python's.
    """
    order: list[str] = []
    done: set[str] = set()
    for root in flags:
        if root in done:
            continue
        done.add(root)
        stack: list[tuple[str, Iterator[Any]]] = [(root, iter(_prerequisites(flags[root])))]
        while stack:
            key, pending = stack[-1]
            pre = next(pending, None)
            if pre is None:
                stack.pop()
                order.append(key)
                continue
            target = pre["flag"]
            if target not in done and target in flags:
                done.add(target)
                stack.append((target, iter(_prerequisites(flags[target]))))
    return order
