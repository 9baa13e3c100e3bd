"""The evaluation debugger: what a context gets from a flag in each environment, and why.

It reads the same per-process compiled ruleset the evaluation API serves from
(flags.evaluation) and asks the engine's explainer, whose answer is the engine's own
``evaluate``; so the debugger cannot disagree with the API.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from typing import Any

from django.contrib.auth.models import AnonymousUser, User
from flagsite_sdk.engine.explain import Explainer, Explanation

from flags import describe, evaluation, roles
from flags.errors import FieldError
from flags.models import Environment, Flag

_explainers: dict[tuple[int, int], Explainer] = {}
_lock = threading.Lock()


def explainer_for(environment_id: int) -> tuple[evaluation.Snapshot, Explainer]:
    """The environment's current snapshot and an explainer of it, built once per version."""
    snap = evaluation.get_snapshot(environment_id)
    key = (environment_id, snap.version)
    with _lock:
        found = _explainers.get(key)
        if found is None:
            for stale in [k for k in _explainers if k[0] == environment_id]:
                del _explainers[stale]
            found = _explainers[key] = Explainer(snap.compiled)
    return snap, found


def _typed(text: str) -> Any:
    """``42`` -> 42, ``true`` -> True, ``"x"`` -> "x"; anything else stays the text itself."""
    try:
        value = json.loads(text)
    except ValueError:
        return text
    return value if isinstance(value, bool | int | float | str | list) else text


def parse_context(
    targeting_key: str = "", account_id: str = "", attributes: str = ""
) -> tuple[dict[str, Any], list[FieldError]]:
    """A context from the debugger form: the two ids plus either a JSON object or one
    ``name=value`` a line (values read as JSON when they parse: numbers, true/false)."""
    context: dict[str, Any] = {}
    errors: list[FieldError] = []
    text = attributes.strip()
    if text.startswith("{"):
        try:
            parsed = json.loads(text)
        except ValueError as exc:
            errors.append(FieldError("attributes", f"Not valid JSON: {exc}.", "invalid"))
            parsed = {}
        if isinstance(parsed, dict):
            context.update(parsed)
        else:
            errors.append(FieldError("attributes", "Give a JSON object.", "invalid"))
    else:
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            name, sep, value = line.partition("=")
            if not sep or not name.strip():
                errors.append(
                    FieldError("attributes", f"Line {number}: write name=value.", "invalid")
                )
                continue
            context[name.strip()] = _typed(value.strip())
    if targeting_key.strip():
        context["targetingKey"] = targeting_key.strip()
    if account_id.strip():
        context["accountId"] = account_id.strip()
    return context, errors


@dataclass(frozen=True)
class ConditionLine:
    text: str
    result: str  # "true", "false" or "wrong type"
    value: str
    problem: str


@dataclass(frozen=True)
class RuleLine:
    rule_id: str
    text: str
    outcome: str  # "matched", "no match" or "not reached"
    conditions: list[ConditionLine]


@dataclass(frozen=True)
class EnvironmentResult:
    environment: Environment
    ruleset_version: int
    explanation: Explanation
    details: dict[str, Any]  # as the evaluation API returns it to a server key
    summary: str
    prerequisites: list[str]
    rules: list[RuleLine]
    bucket: list[str]


def details_json(explanation: Explanation) -> dict[str, Any]:
    """The details as the evaluation API returns them to a server key (flags.api.evaluate)."""
    d = explanation.details
    return {
        "flagKey": d.flag_key,
        "value": d.value,
        "variant": d.variant,
        "reason": str(d.reason),
        "errorCode": str(d.error_code) if d.error_code is not None else None,
        "errorMessage": d.error_message,
        "flagVersion": d.flag_version,
        "ruleId": d.rule_id,
    }


def _summary(e: Explanation) -> str:
    d = e.details
    if d.error_code is not None:
        return f"error {d.error_code}: {d.error_message} (the caller's default is used)"
    why = {
        "DISABLED": "the flag is OFF in this environment",
        "STATIC": "everyone gets the same variant",
        "TARGETING_MATCH": f"rule {d.rule_id} matched",
        "SPLIT": f"percentage split{f' of rule {d.rule_id}' if d.rule_id else ''}",
        "DEFAULT": "no rule matched: the default serve" if e.served_by != "off" else "",
    }.get(str(d.reason), str(d.reason))
    if e.served_by == "off" and e.enabled:
        why = "a prerequisite is not met, so the off variant"
    elif e.rollout is not None and e.rollout.bucket is None:
        why = f"{e.rollout.bucket_by} is missing, so the rollout's fallback variant"
    return f"gets {d.variant} ({describe.value_text(d.value)}) because {why}"


def _rule_lines(e: Explanation, raw_rules: list[dict[str, Any]], segments: Any) -> list[RuleLine]:
    lines = []
    for trace in e.rules:
        rule = raw_rules[trace.index]
        outcome = {True: "matched", False: "no match", None: "not reached"}[trace.matched]
        conditions = [
            ConditionLine(
                text=describe.describe_condition(c.condition, segments),
                result={True: "true", False: "false", None: "wrong type"}[c.result],
                value="" if c.value is None else describe.value_text(c.value),
                problem=c.problem or "",
            )
            for c in trace.conditions
        ]
        lines.append(
            RuleLine(trace.rule_id, describe.describe_rule(rule, segments), outcome, conditions)
        )
    return lines


def _bucket_lines(e: Explanation) -> list[str]:
    r = e.rollout
    if r is None:
        return []
    if r.bucket is None:
        fallback = r.fallback_variant or "an error (no fallback variant)"
        return [f"{r.bucket_by} is missing or unusable, so the rollout serves {fallback}"]
    lines = [f"{r.bucket_by} = {describe.value_text(r.value)} → bucket {r.bucket:,} of 100,000"]
    for part in r.ranges:
        mark = "  ◀ here" if part.start <= r.bucket < part.end else ""
        lines.append(
            f"{part.variant}: buckets {part.start:,} to {max(part.end - 1, part.start):,} "
            f"({describe.percent(part.end - part.start)}){mark}"
        )
    return lines


def debug_flag(
    flag: Flag,
    context: dict[str, Any],
    user: User | AnonymousUser,
    visible: list[Environment] | None = None,
) -> list[EnvironmentResult]:
    """The flag's answer for ``context`` in every environment ``user`` may see.

    ``visible`` is ``user``'s visible environments when the caller already looked them up
    (asking many contexts at once should not repeat the permission query each time).
    """
    results = []
    if visible is None:
        visible = list(roles.visible_environments(user).order_by("sort_order", "key"))
    environments = [e for e in visible if e.project_id == flag.project_id]
    for environment in environments:
        snap, explainer = explainer_for(environment.pk)
        explanation = explainer.explain(flag.key, context)
        raw = snap.document.get("flags", {}).get(flag.key, {})
        segments = {
            k: {"key_attribute": s.get("keyAttribute", "targetingKey")}
            for k, s in snap.document.get("segments", {}).items()
        }
        prerequisites = [
            f"{p.flag} served {p.served} — needs {describe.list_text(list(p.required))}: "
            f"{'met' if p.met else 'NOT met'}"
            for p in explanation.prerequisites
        ]
        results.append(
            EnvironmentResult(
                environment=environment,
                ruleset_version=snap.version,
                explanation=explanation,
                details=details_json(explanation),
                summary=_summary(explanation),
                prerequisites=prerequisites,
                rules=_rule_lines(explanation, raw.get("rules", []), segments),
                bucket=_bucket_lines(explanation),
            )
        )
    return results
