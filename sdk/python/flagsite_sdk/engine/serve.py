"""Serves (a fixed variant or a rollout) compiled to precomputed outcomes."""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import mmh3

from .grammar import in_number_range
from .operators import TARGETING_KEY, TARGETING_KEY_ALIAS, Context
from .text import MAX_VALUE_LENGTH, utf8
from .types import BUCKETS, ErrorCode, EvaluationDetails, Reason

Resolver = Callable[[Context], EvaluationDetails]


@dataclass(frozen=True, slots=True)
class FlagShape:
    """What every outcome of one flag shares."""

    key: str
    version: int
    salt: str
    variants: Mapping[str, Any]

    def outcome(
        self, variant: str, reason: Reason, rule_id: str | None, notes: tuple[str, ...] = ()
    ) -> EvaluationDetails:
        return EvaluationDetails(
            flag_key=self.key,
            value=self.variants[variant],
            variant=variant,
            reason=reason,
            rule_id=rule_id,
            flag_version=self.version,
            notes=notes,
        )


def number_key(value: Any) -> str | None:
    """The decimal text a rollout hashes for a number, None when a number cannot be a key.

    A whole number within the number range, written as an integer ("10" for 10 and 10.0
    alike, since JSON gives JavaScript no way to tell them apart). Fractions, numbers beyond
    the range (a 2**64 id is an int in Python, an approximate double in JavaScript and on the
    server) and booleans are not keys, in every engine alike.
    """
    t = type(value)
    if t is int:
        return str(value) if in_number_range(value) else None
    if t is float and in_number_range(value) and value.is_integer():
        return str(int(value))
    return None


def compile_serve(
    shape: FlagShape, serve: Mapping[str, Any], reason: Reason, rule_id: str | None
) -> EvaluationDetails | Resolver:
    """A shared outcome for a fixed variant, a resolver for a rollout."""
    if "variant" in serve:
        return shape.outcome(serve["variant"], reason, rule_id)
    return _compile_rollout(shape, serve["rollout"], reason, rule_id)


def _compile_rollout(
    shape: FlagShape, rollout: Mapping[str, Any], reason: Reason, rule_id: str | None
) -> Resolver:
    attr: str = rollout.get("bucketBy", TARGETING_KEY)
    alias = TARGETING_KEY_ALIAS if attr == TARGETING_KEY else None
    parts = [p for p in rollout["variants"] if p["weight"] > 0]
    outcomes = tuple(shape.outcome(p["variant"], Reason.SPLIT, rule_id) for p in parts)
    ends: list[int] = []
    total = 0
    for p in parts:
        total += p["weight"]
        ends.append(total)
    if reason is Reason.STATIC:
        reason = Reason.DEFAULT  # a fallback is never the flag's one fixed answer
    missing = _missing_outcome(shape, rollout, attr, "is missing", reason, rule_id)
    unusable = _missing_outcome(
        shape, rollout, attr, "is not a string or a whole number within 2^53", reason, rule_id
    )
    prefix = shape.salt + "."
    hash32 = mmh3.hash

    def key_of(ctx: Context) -> Any:
        # a string over the length bound counts as absent, like a null
        v = ctx.get(attr)
        if v is None or (type(v) is str and len(v) > MAX_VALUE_LENGTH):
            v = ctx.get(alias) if alias is not None else None
            if type(v) is str and len(v) > MAX_VALUE_LENGTH:
                v = None
        return v

    if len(outcomes) == 1:
        only = outcomes[0]

        def single(ctx: Context) -> EvaluationDetails:
            # a 100% rollout still needs the attribute, so that it is the same
            # population that was in at 99%
            v = key_of(ctx)
            if type(v) is str and v:
                return only
            if v is None or v == "":
                return missing
            return only if number_key(v) is not None else unusable

        return single

    if len(outcomes) == 2:
        first, second = outcomes
        cut = ends[0]

        def two_way(ctx: Context) -> EvaluationDetails:
            v = ctx.get(attr)
            if type(v) is not str or not v or len(v) > MAX_VALUE_LENGTH:
                v = key_of(ctx)
                if v is None or v == "":
                    return missing
                if type(v) is not str:
                    v = number_key(v)
                    if v is None:
                        return unusable
            return first if hash32(utf8(prefix + v), 0, False) % BUCKETS < cut else second

        return two_way

    def many_way(ctx: Context) -> EvaluationDetails:
        v = key_of(ctx)
        if v is None or v == "":
            return missing
        if type(v) is not str:
            v = number_key(v)
            if v is None:
                return unusable
        return outcomes[bisect_right(ends, hash32(utf8(prefix + v), 0, False) % BUCKETS)]

    return many_way


def _missing_outcome(
    shape: FlagShape,
    rollout: Mapping[str, Any],
    attr: str,
    why: str,
    reason: Reason,
    rule_id: str | None,
) -> EvaluationDetails:
    fallback = rollout.get("fallbackVariant")
    note = f"bucket-by attribute {attr!r} {why}"
    if fallback is not None:
        return shape.outcome(fallback, reason, rule_id, (f"{note}; served the fallback variant",))
    return EvaluationDetails(
        flag_key=shape.key,
        value=None,
        variant=None,
        reason=Reason.ERROR,
        error_code=ErrorCode.TARGETING_KEY_MISSING,
        error_message=f"{note} and the rollout has no fallbackVariant",
        rule_id=rule_id,
        flag_version=shape.version,
    )
