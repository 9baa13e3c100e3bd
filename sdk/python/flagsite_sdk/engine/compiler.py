"""compile_ruleset: a validated document becomes closures, built once per ruleset version."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from .forward import partition
from .operators import (
    TARGETING_KEY,
    TARGETING_KEY_ALIAS,
    Condition,
    ConditionProblem,
    Context,
    compile_condition,
)
from .serve import FlagShape, Resolver, compile_serve
from .text import MAX_VALUE_LENGTH, well_formed
from .types import ErrorCode, EvaluationDetails, Reason, RulesetError, RulesetInvalid
from .validate import prerequisite_order, validate_ruleset

_ACCEPTED_DEFAULTS: Mapping[str, frozenset[type] | None] = {
    "boolean": frozenset({bool}),
    "string": frozenset({str}),
    "number": frozenset({int, float}),
    "json": None,
}
_EMPTY: Mapping[str, Any] = MappingProxyType({})
_Step = tuple[Condition, EvaluationDetails | None, Resolver | None]


@dataclass(frozen=True, slots=True)
class CompiledFlag:
    """One flag ready to evaluate; `resolve` never sees the raw document again."""

    key: str
    version: int
    value_type: str
    client_visible: bool
    enabled: bool
    off_variant: str
    variants: Mapping[str, Any]
    resolve: Resolver
    accepted_defaults: frozenset[type] | None


class CompiledRuleset:
    """The flags and segments of one environment at one ruleset version.

    `problems` holds what a lenient compile set aside (see forward.py): the errors of every
    flag and segment that could not be compiled. Broken flags answer ERROR / PARSE_ERROR.
    """

    __slots__ = (
        "_booleans",
        "_flags",
        "broken_flags",
        "broken_segments",
        "environment",
        "problems",
        "project",
        "source",
        "version",
    )

    def __init__(
        self,
        doc: Mapping[str, Any],
        flags: dict[str, CompiledFlag],
        problems: tuple[RulesetError, ...] = (),
        broken_flags: frozenset[str] = frozenset(),
        broken_segments: frozenset[str] = frozenset(),
    ) -> None:
        self.version: int = doc["version"]
        self.environment: str = doc["environment"]
        self.project: str | None = doc.get("project")
        self.source = doc
        self.problems = problems
        self.broken_flags = broken_flags
        self.broken_segments = broken_segments
        self._flags = flags
        self._booleans = {k: f.resolve for k, f in flags.items() if f.value_type == "boolean"}

    def flag_keys(self) -> list[str]:
        return list(self._flags)

    def flag(self, key: str) -> CompiledFlag | None:
        return self._flags.get(key)

    def is_enabled(self, key: str, context: Context | None, default: bool = False) -> bool:
        """Fast boolean check; unknown or non-boolean flags and any error give `default`."""
        resolve = self._booleans.get(key)
        if resolve is None:
            return default
        try:
            details = resolve(context if context is not None else _EMPTY)
        except Exception:
            return default
        if details.error_code is None:
            value: bool = details.value
            return value
        return default

    def evaluate(self, key: str, context: Context | None, default: Any = None) -> EvaluationDetails:
        """Full details; never raises. On error the value is `default` and error_code says why."""
        flag = self._flags.get(key)
        if flag is None:
            return _error(key, default, ErrorCode.FLAG_NOT_FOUND, f"no flag {key!r}", None)
        accepted = flag.accepted_defaults
        if accepted is not None and default is not None and type(default) not in accepted:
            return _error(
                key,
                default,
                ErrorCode.TYPE_MISMATCH,
                f"flag {key!r} is a {flag.value_type}, the default is a {type(default).__name__}",
                flag.version,
            )
        try:
            details = flag.resolve(context if context is not None else _EMPTY)
        except Exception as exc:
            return _error(key, default, ErrorCode.GENERAL, repr(exc), flag.version)
        if details.error_code is not None:
            return dataclasses.replace(details, value=default)
        return details

    def evaluate_all(
        self, context: Context | None, *, client_visible_only: bool = False
    ) -> dict[str, EvaluationDetails]:
        return {
            key: self.evaluate(key, context)
            for key, flag in self._flags.items()
            if flag.client_visible or not client_visible_only
        }


def _error(
    key: str, default: Any, code: ErrorCode, message: str, version: int | None
) -> EvaluationDetails:
    return EvaluationDetails(
        flag_key=key,
        value=default,
        variant=None,
        reason=Reason.ERROR,
        error_code=code,
        error_message=message,
        flag_version=version,
    )


def compile_ruleset(
    doc: Mapping[str, Any], *, validate: bool = True, lenient: bool = False
) -> CompiledRuleset:
    """Validate then compile `doc`; raises RulesetInvalid with every error found.

    validate=False skips validation for a document already validated by this same
    engine version (the server validates on save); an invalid document may then
    raise anything.

    lenient=True is for documents this process did not validate itself (SDKs, and the
    server serving what it stored under an earlier grammar): unknown optional fields are
    ignored, and a flag that cannot be compiled answers ERROR / PARSE_ERROR on its own
    while every other flag applies (forward.py). Only an unusable top level raises.
    """
    if lenient:
        return _compile_lenient(doc)
    if validate:
        errors = validate_ruleset(doc)
        if errors:
            raise RulesetInvalid(errors)
        try:
            return _compile(doc)
        except Exception as exc:  # a validated document that still fails is our bug
            error = RulesetError("", f"compilation failed: {exc!r}"[:300], "internal")
            raise RulesetInvalid([error]) from exc
    return _compile(doc)


def _compile_lenient(doc: Mapping[str, Any]) -> CompiledRuleset:
    split = partition(doc)
    if split.top_level:
        raise RulesetInvalid(split.top_level)
    try:
        return _compile(split.document, split.broken_flags, split.broken_segments)
    except Exception as exc:  # validated flags that still fail to compile are our bug
        error = RulesetError("", f"compilation failed: {exc!r}"[:300], "internal")
        raise RulesetInvalid([error]) from exc


def _compile(
    doc: Mapping[str, Any],
    broken_flags: Mapping[str, list[RulesetError]] | None = None,
    broken_segments: Mapping[str, list[RulesetError]] | None = None,
) -> CompiledRuleset:
    broken_flags = broken_flags or {}
    broken_segments = broken_segments or {}
    segments: dict[str, Condition] = {}
    for key, seg in doc["segments"].items():
        if key not in broken_segments:
            segments[key] = _compile_segment(key, seg)
    flags: dict[str, CompiledFlag] = {}
    raw_flags: Mapping[str, Any] = doc["flags"]
    for key, errors in broken_flags.items():
        flags[key] = _broken_flag(key, raw_flags[key], errors)
    # broken flags may not even be objects: only the sound ones are ordered and compiled
    sound = {k: f for k, f in raw_flags.items() if k not in broken_flags}
    for key in prerequisite_order(sound):
        flags[key] = _compile_flag(raw_flags[key], flags, segments)
    ordered = {key: flags[key] for key in raw_flags}
    problems = tuple(
        e for found in (*broken_flags.values(), *broken_segments.values()) for e in found
    )
    return CompiledRuleset(
        doc, ordered, problems, frozenset(broken_flags), frozenset(broken_segments)
    )


def _broken_flag(key: str, raw: Any, errors: list[RulesetError]) -> CompiledFlag:
    """A flag that could not be compiled: every evaluation is ERROR / PARSE_ERROR, whose
    value is the caller's default (OpenFeature's rule for errors)."""
    fields: Mapping[str, Any] = raw if isinstance(raw, Mapping) else {}
    version = fields.get("version")
    flag_version = version if type(version) is int else None
    first = errors[0]
    where = f" at {first.path}" if first.path else ""
    more = f" (+{len(errors) - 1} more)" if len(errors) > 1 else ""
    failed = EvaluationDetails(
        flag_key=key,
        value=None,
        variant=None,
        reason=Reason.ERROR,
        error_code=ErrorCode.PARSE_ERROR,
        error_message=f"flag {key!r} could not be compiled{where}: {first.message}{more}"[:500],
        flag_version=flag_version,
    )
    value_type = fields.get("valueType")
    known_type = type(value_type) is str and value_type in _ACCEPTED_DEFAULTS
    return CompiledFlag(
        key=key,
        version=flag_version if flag_version is not None else 0,
        value_type=str(value_type) if known_type else "json",
        client_visible=fields.get("clientVisible") is True,
        enabled=fields.get("enabled") is True,
        off_variant=str(fields.get("offVariant", "")),
        variants=MappingProxyType({}),
        resolve=lambda ctx: failed,
        # no TYPE_MISMATCH check: whatever the caller's default, it is what comes back
        accepted_defaults=None,
    )


def _compile_flag(
    raw: Mapping[str, Any], done: Mapping[str, CompiledFlag], segments: Mapping[str, Condition]
) -> CompiledFlag:
    shape = FlagShape(
        raw["key"], raw["version"], raw["salt"], MappingProxyType(dict(raw["variants"]))
    )
    resolve = _flag_resolver(shape, raw, done, segments)
    return CompiledFlag(
        key=shape.key,
        version=shape.version,
        value_type=raw["valueType"],
        client_visible=bool(raw.get("clientVisible", False)),
        enabled=raw["enabled"],
        off_variant=raw["offVariant"],
        variants=shape.variants,
        resolve=resolve,
        accepted_defaults=_ACCEPTED_DEFAULTS[raw["valueType"]],
    )


def _flag_resolver(
    shape: FlagShape,
    raw: Mapping[str, Any],
    done: Mapping[str, CompiledFlag],
    segments: Mapping[str, Condition],
) -> Resolver:
    off = raw["offVariant"]
    if not raw["enabled"]:
        disabled = shape.outcome(off, Reason.DISABLED, None)
        return lambda ctx: disabled
    prerequisites = [_prerequisite_check(shape, off, p, done) for p in raw.get("prerequisites", [])]
    steps: list[_Step] = []
    for i, rule in enumerate(raw["rules"]):
        match = _all_of(
            [
                compile_condition(c, f"rules[{i}].conditions[{j}]", segments)
                for j, c in enumerate(rule["conditions"])
            ]
        )
        served = compile_serve(shape, rule["serve"], Reason.TARGETING_MATCH, rule["id"])
        if isinstance(served, EvaluationDetails):
            steps.append((match, served, None))
        else:
            steps.append((match, None, served))
    dynamic = bool(prerequisites or steps)
    default = compile_serve(
        shape, raw["defaultServe"], Reason.DEFAULT if dynamic else Reason.STATIC, None
    )
    if not dynamic:
        if isinstance(default, EvaluationDetails):
            static = default
            return lambda ctx: static
        return default
    return _general_resolver(tuple(prerequisites), tuple(steps), default)


def _general_resolver(
    prerequisites: tuple[Callable[[Context], EvaluationDetails | None], ...],
    steps: tuple[_Step, ...],
    default: EvaluationDetails | Resolver,
) -> Resolver:
    default_static = default if isinstance(default, EvaluationDetails) else None
    default_dynamic = None if isinstance(default, EvaluationDetails) else default

    def resolve(ctx: Context) -> EvaluationDetails:
        for check in prerequisites:
            failed = check(ctx)
            if failed is not None:
                return failed
        notes: tuple[str, ...] = ()
        for match, static, dynamic in steps:
            try:
                hit = match(ctx)
            except ConditionProblem as problem:
                notes = (*notes, f"{problem}; condition is false")
                continue
            if hit:
                result = static if static is not None else dynamic(ctx)  # type: ignore[misc]
                break
        else:
            result = default_static if default_static is not None else default_dynamic(ctx)  # type: ignore[misc]
        if notes:
            return dataclasses.replace(result, notes=(*notes, *result.notes))
        return result

    return resolve


def _prerequisite_check(
    shape: FlagShape, off: str, pre: Mapping[str, Any], done: Mapping[str, CompiledFlag]
) -> Callable[[Context], EvaluationDetails | None]:
    required = frozenset(pre["variants"])
    target = done[pre["flag"]].resolve
    wanted = ", ".join(repr(v) for v in pre["variants"])
    failed = shape.outcome(
        off,
        Reason.DEFAULT,
        None,
        (f"prerequisite {pre['flag']!r} not met (needs variant {wanted}); served offVariant",),
    )

    def check(ctx: Context) -> EvaluationDetails | None:
        return None if target(ctx).variant in required else failed

    return check


def _all_of(conditions: list[Condition]) -> Condition:
    if not conditions:
        return _always
    if len(conditions) == 1:
        return conditions[0]
    if len(conditions) == 2:
        first, second = conditions
        return lambda ctx: first(ctx) and second(ctx)
    frozen = tuple(conditions)

    def every(ctx: Context) -> bool:
        return all(condition(ctx) for condition in frozen)

    return every


def _always(ctx: Context) -> bool:
    return True


def _compile_segment(key: str, seg: Mapping[str, Any]) -> Condition:
    """Membership test: excluded keys lose, then included keys win, then any rule."""
    attr: str = seg.get("keyAttribute", TARGETING_KEY)
    alias = TARGETING_KEY_ALIAS if attr == TARGETING_KEY else None
    included = frozenset(well_formed(k) for k in seg.get("included", []))
    excluded = frozenset(well_formed(k) for k in seg.get("excluded", []))
    rules = tuple(
        _all_of(
            [
                compile_condition(c, f"segments.{key}.rules[{i}].conditions[{j}]", {})
                for j, c in enumerate(rule["conditions"])
            ]
        )
        for i, rule in enumerate(seg.get("rules", []))
    )

    def member(ctx: Context) -> bool:
        v = ctx.get(attr)
        if alias is not None and (v is None or (type(v) is str and len(v) > MAX_VALUE_LENGTH)):
            v = ctx.get(alias)
        if type(v) is str and len(v) <= MAX_VALUE_LENGTH:
            if v in excluded:
                return False
            if v in included:
                return True
        problem: ConditionProblem | None = None
        for rule in rules:
            try:
                if rule(ctx):
                    return True
            except ConditionProblem as exc:
                problem = exc
        if problem is not None:
            # membership is unknown, so neither in_segment nor not_in_segment may hold
            raise problem
        return False

    return member
