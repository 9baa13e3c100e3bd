"""Why a context gets its variant: the evaluation details plus the steps that led there.

For debugging tools, not the hot path. The answer (``details``) is always the compiled
ruleset's own ``evaluate``, so an explanation cannot disagree with an evaluation; the trace
around it re-runs each condition with the same compiled operators (``compile_condition``) and
each bucket with the same hash, one condition at a time, so every result can be shown.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .compiler import CompiledRuleset, _compile_segment
from .hashing import bucket
from .operators import (
    SEGMENT_OPERATORS,
    TARGETING_KEY,
    TARGETING_KEY_ALIAS,
    Condition,
    ConditionProblem,
    Context,
    compile_condition,
)
from .serve import number_key
from .text import bounded
from .types import EvaluationDetails


@dataclass(frozen=True, slots=True)
class ConditionTrace:
    condition: Mapping[str, Any]
    result: bool | None  # None: the context value had the wrong type (the condition is false)
    problem: str | None = None
    value: Any = None  # the context's value of the attribute (None for segment conditions)


@dataclass(frozen=True, slots=True)
class RuleTrace:
    index: int
    rule_id: str
    conditions: tuple[ConditionTrace, ...]
    matched: bool | None  # None: not reached, an earlier rule (or a prerequisite) decided


@dataclass(frozen=True, slots=True)
class PrerequisiteTrace:
    flag: str
    required: tuple[str, ...]
    served: str | None
    met: bool


@dataclass(frozen=True, slots=True)
class BucketRange:
    variant: str
    start: int  # inclusive
    end: int  # exclusive


@dataclass(frozen=True, slots=True)
class RolloutTrace:
    bucket_by: str
    value: Any
    bucket: int | None  # None: the value is missing or unusable (fallback or error)
    ranges: tuple[BucketRange, ...]
    fallback_variant: str | None


@dataclass(frozen=True, slots=True)
class Explanation:
    details: EvaluationDetails
    enabled: bool
    prerequisites: tuple[PrerequisiteTrace, ...]
    rules: tuple[RuleTrace, ...]
    # The serve that answered: "rule" (rules[matched]), "default", "off" or None (no such flag).
    served_by: str | None
    rollout: RolloutTrace | None


class Explainer:
    """Explains evaluations against one compiled ruleset; build once per ruleset version."""

    def __init__(self, ruleset: CompiledRuleset) -> None:
        self.ruleset = ruleset
        doc = ruleset.source
        # What a lenient compile set aside is explained by its error alone.
        broken = ruleset.broken_flags
        self._segments = {
            k: _compile_segment(k, s)
            for k, s in doc["segments"].items()
            if k not in ruleset.broken_segments
        }
        self._flags: Mapping[str, Any] = {k: f for k, f in doc["flags"].items() if k not in broken}
        self._conditions: dict[str, list[list[Condition]]] = {
            key: [
                [
                    compile_condition(c, f"rules[{i}].conditions[{j}]", self._segments)
                    for j, c in enumerate(rule["conditions"])
                ]
                for i, rule in enumerate(raw["rules"])
            ]
            for key, raw in self._flags.items()
        }

    def explain(self, key: str, context: Context | None, default: Any = None) -> Explanation:
        details = self.ruleset.evaluate(key, context, default)
        context = context if context is not None else {}
        raw = self._flags.get(key)
        if raw is None:
            return Explanation(details, False, (), (), None, None)
        if not raw["enabled"]:
            return Explanation(details, False, (), (), "off", None)
        prerequisites = tuple(self._prerequisite(p, context) for p in raw.get("prerequisites", []))
        if not all(p.met for p in prerequisites):
            return Explanation(details, True, prerequisites, (), "off", None)
        rules: list[RuleTrace] = []
        serve: Mapping[str, Any] = raw["defaultServe"]
        served_by = "default"
        for i, rule in enumerate(raw["rules"]):
            if served_by == "rule":
                rules.append(RuleTrace(i, rule["id"], (), None))
                continue
            traces = tuple(
                self._condition(c, compiled, context)
                for c, compiled in zip(rule["conditions"], self._conditions[key][i], strict=True)
            )
            matched = all(t.result is True for t in traces)
            rules.append(RuleTrace(i, rule["id"], traces, matched))
            if matched:
                serve, served_by = rule["serve"], "rule"
        rollout = _rollout(raw["salt"], serve["rollout"], context) if "rollout" in serve else None
        return Explanation(details, True, prerequisites, tuple(rules), served_by, rollout)

    def _prerequisite(self, pre: Mapping[str, Any], context: Context) -> PrerequisiteTrace:
        served = self.ruleset.evaluate(pre["flag"], context).variant
        required = tuple(pre["variants"])
        return PrerequisiteTrace(pre["flag"], required, served, served in required)

    def _condition(
        self, raw: Mapping[str, Any], compiled: Condition, context: Context
    ) -> ConditionTrace:
        value = (
            None if raw["operator"] in SEGMENT_OPERATORS else _attribute(raw["attribute"], context)
        )
        try:
            return ConditionTrace(raw, bool(compiled(context)), value=value)
        except ConditionProblem as problem:
            return ConditionTrace(raw, None, f"{problem}; condition is false", value)


def _attribute(name: str, context: Context) -> Any:
    value = context.get(name)
    if value is None and name == TARGETING_KEY:
        value = context.get(TARGETING_KEY_ALIAS)
    return bounded(value)  # the engine's length bound: a string too long counts as absent


def _rollout(salt: str, rollout: Mapping[str, Any], context: Context) -> RolloutTrace:
    bucket_by: str = rollout.get("bucketBy", TARGETING_KEY)
    value = _attribute(bucket_by, context)
    ranges: list[BucketRange] = []
    start = 0
    for part in rollout["variants"]:
        ranges.append(BucketRange(part["variant"], start, start + part["weight"]))
        start += part["weight"]
    key = value if type(value) is str and value != "" else number_key(value)
    number = bucket(salt, key) if key is not None else None
    return RolloutTrace(bucket_by, value, number, tuple(ranges), rollout.get("fallbackVariant"))


def segment_membership(segment: Mapping[str, Any], context: Context) -> bool | None:
    """Whether ``context`` is in ``segment`` (a ruleset segment entry), by the engine's own
    membership test; None when it is unknown (a rule hit a wrong-typed value)."""
    member = _compile_segment(str(segment.get("key", "segment")), segment)
    try:
        return bool(member(context))
    except ConditionProblem:
        return None
