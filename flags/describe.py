"""Targeting in words: flag states, rules, conditions, serves, segments and their changes.

Pure functions over the ruleset shapes of docs/ruleset.md (a flag state's fields may come as
model snapshots, ``default_serve``, or as ruleset entries, ``defaultServe``). Nothing here
queries the database, so the admin list, the flag page, history and change-request diffs all
render the same sentences. Every operator of the ruleset has a phrase; an operator this module
does not know (a newer engine) still reads as words, never as JSON.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

WEIGHT_TOTAL = 100_000
STATE_FIELDS = ("enabled", "off_variant", "prerequisites", "rules", "default_serve")
LIST_LIMIT = 8

# operator -> (phrase when it holds, phrase when negated)
_PHRASES: dict[str, tuple[str, str]] = {
    "equals": ("is {v}", "is not {v}"),
    "not_equals": ("is not {v}", "is {v}"),
    "in": ("is {any}", "is none of {all}"),
    "not_in": ("is none of {all}", "is {any}"),
    "contains": ("contains {any}", "contains none of {all}"),
    "starts_with": ("starts with {any}", "starts with none of {all}"),
    "ends_with": ("ends with {any}", "ends with none of {all}"),
    "matches": ("matches {any}", "matches none of {all}"),
    "lt": ("is less than {v}", "is not less than {v}"),
    "lte": ("is at most {v}", "is more than {v}"),
    "gt": ("is more than {v}", "is at most {v}"),
    "gte": ("is at least {v}", "is less than {v}"),
    "semver_eq": ("is version {v}", "is a version other than {v}"),
    "semver_lt": ("is a version below {v}", "is not a version below {v}"),
    "semver_gt": ("is a version above {v}", "is not a version above {v}"),
    "before": ("is before {v}", "is not before {v}"),
    "after": ("is after {v}", "is not after {v}"),
    "exists": ("is set", "is not set"),
    "not_exists": ("is not set", "is set"),
    "email_domain_in": ("is an email address at {any}", "is an email address not at {all}"),
}
_SEGMENT_OPERATORS = {"in_segment": True, "not_in_segment": False}
# Bucketing and key attributes -> what a person calls the things they identify.
_NOUNS = {"accountId": "accounts", "targetingKey": "users", "userId": "users"}


def has_phrase(operator: str) -> bool:
    """Whether ``operator`` has a sentence of its own (others read as "attribute op values")."""
    return operator in _PHRASES or operator in _SEGMENT_OPERATORS


def noun(attribute: str | None) -> str:
    return _NOUNS.get(attribute or "targetingKey", "contexts")


def value_text(value: Any) -> str:
    """One value as a person writes it: plain words, quoted only when spaces or nothing."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "nothing"
    if isinstance(value, str):
        return f"“{value}”" if value == "" or value != value.strip() or " " in value else value
    if isinstance(value, Mapping):
        inner = ", ".join(f"{k}: {value_text(v)}" for k, v in value.items())
        return "{" + inner + "}"
    if isinstance(value, Sequence):
        return "[" + ", ".join(value_text(v) for v in value) + "]"
    return str(value)


def list_text(values: Sequence[Any], joiner: str = "or") -> str:
    """``a, b or c``; long lists end with "and N more"."""
    shown = [value_text(v) for v in values[:LIST_LIMIT]]
    if len(values) > LIST_LIMIT:
        return ", ".join(shown) + f" and {len(values) - LIST_LIMIT} more"
    if len(shown) <= 1:
        return "".join(shown)
    return ", ".join(shown[:-1]) + f" {joiner} " + shown[-1]


def percent(weight: int) -> str:
    """A weight in 1/100,000 units as a percentage: 5000 -> "5%", 12345 -> "12.345%"."""
    text = f"{weight * 100 / WEIGHT_TOTAL:.3f}".rstrip("0").rstrip(".")
    return f"{text}%"


def describe_condition(
    condition: Mapping[str, Any], segments: Mapping[str, Any] | None = None
) -> str:
    operator = str(condition.get("operator", ""))
    values: list[Any] = list(condition.get("values") or [])
    negate = bool(condition.get("negate"))
    if operator in _SEGMENT_OPERATORS:
        inside = _SEGMENT_OPERATORS[operator] != negate
        who = _segment_noun(values, segments)
        kind = "segment" if len(values) == 1 else "segments"
        if inside:
            return f"{who} in {kind} {list_text(values)}"
        return (
            f"{who} in none of the {kind} {list_text(values, 'and')}"
            if len(values) > 1
            else (f"{who} not in segment {list_text(values)}")
        )
    attribute = str(condition.get("attribute", "?"))
    shown = [f"/{v}/" for v in values] if operator == "matches" else values
    if operator == "in" and not values:
        return (
            f"{attribute} is in an empty list (matches nobody)"
            if not negate
            else (f"{attribute} is set")
        )
    if operator == "not_in" and not values:
        return (
            f"{attribute} is set"
            if not negate
            else f"{attribute} is in an empty list (matches nobody)"
        )
    phrases = _PHRASES.get(operator)
    if phrases is None:
        text = f"{attribute} {operator.replace('_', ' ')} {list_text(shown)}".rstrip()
        return f"not ({text})" if negate else text
    single = value_text(shown[0]) if shown else ""
    text = phrases[1 if negate else 0].format(
        v=single,
        any=("one of " if len(shown) > 1 else "") + list_text(shown),
        all=list_text(shown, "and"),
    )
    suffix = (
        " (ignoring case)" if condition.get("caseInsensitive") and operator in _CASE_AWARE else ""
    )
    return f"{attribute} {text}{suffix}"


_CASE_AWARE = {
    "equals", "not_equals", "in", "not_in", "contains", "starts_with", "ends_with", "matches",
}  # fmt: skip


def _segment_noun(keys: Iterable[Any], segments: Mapping[str, Any] | None) -> str:
    attributes = {
        _get(segments[k], "key_attribute", "targetingKey")
        for k in keys
        if segments and isinstance(k, str) and k in segments
    }
    return noun(attributes.pop()) if len(attributes) == 1 else "contexts"


def describe_conditions(
    conditions: Sequence[Mapping[str, Any]], segments: Mapping[str, Any] | None = None
) -> str:
    if not conditions:
        return "everyone"
    return " and ".join(describe_condition(c, segments) for c in conditions)


def describe_serve(serve: Mapping[str, Any] | None) -> str:
    """``on``, or ``5% of accounts (by accountId) → on, 95% → off``."""
    if not serve:
        return "nothing (no serve set)"
    if "variant" in serve:
        return str(serve["variant"])
    rollout: Mapping[str, Any] = serve.get("rollout") or {}
    bucket_by = rollout.get("bucketBy") or "targetingKey"
    parts = [
        (percent(int(v.get("weight", 0))), str(v.get("variant")))
        for v in rollout.get("variants") or []
    ]
    if not parts:
        return "a rollout with no variants"
    first, *rest = parts
    text = f"{first[0]} of {noun(bucket_by)} (by {bucket_by}) → {first[1]}"
    text += "".join(f", {p} → {v}" for p, v in rest)
    fallback = rollout.get("fallbackVariant")
    if fallback is not None:
        text += f"; without {bucket_by} → {fallback}"
    else:
        text += f"; without {bucket_by} → an error (the caller's default)"
    return text


def describe_rule(rule: Mapping[str, Any], segments: Mapping[str, Any] | None = None) -> str:
    conditions = describe_conditions(rule.get("conditions") or [], segments)
    return f"{conditions} → {describe_serve(rule.get('serve'))}"


def describe_prerequisite(prerequisite: Mapping[str, Any]) -> str:
    variants = list(prerequisite.get("variants") or [])
    return f"requires {prerequisite.get('flag')} to serve {list_text(variants)}"


def _get(data: Any, snake: str, default: Any = None) -> Any:
    """A field from a model snapshot (snake_case), a ruleset entry (camelCase) or a model."""
    camel = snake.split("_")[0] + "".join(p.title() for p in snake.split("_")[1:])
    if isinstance(data, Mapping):
        if snake in data:
            return data[snake]
        return data.get(camel, default)
    return getattr(data, snake, default)


def state_sentences(
    state: Mapping[str, Any], segments: Mapping[str, Any] | None = None
) -> list[str]:
    """The targeting of one flag state, one sentence per step, in evaluation order."""
    off = _get(state, "off_variant", "off")
    if not _get(state, "enabled", False):
        return [f"OFF · everyone → {off}"]
    prerequisites = _get(state, "prerequisites") or []
    rules = _get(state, "rules") or []
    parts = ["ON"]
    parts += [f"{describe_prerequisite(p)} (else → {off})" for p in prerequisites]
    parts += [describe_rule(r, segments) for r in rules]
    who = "everyone else" if rules or prerequisites else "everyone"
    default = _get(state, "default_serve") or {}
    if "rollout" in default:
        # A split says who by itself: "5% of accounts (by accountId) → on, 95% → off".
        text = describe_serve(default)
        parts.append(f"everyone else: {text}" if who == "everyone else" else text)
    else:
        parts.append(f"{who} → {describe_serve(default)}")
    return parts


def describe_state(
    state: Mapping[str, Any],
    environment: str | None = None,
    segments: Mapping[str, Any] | None = None,
) -> str:
    """``production: ON · accounts in segment free-us-uk → on · everyone else → off``."""
    text = " · ".join(state_sentences(state, segments))
    return f"{environment}: {text}" if environment else text


def describe_segment(segment: Mapping[str, Any]) -> str:
    key_attribute = _get(segment, "key_attribute", "targetingKey") or "targetingKey"
    who = noun(key_attribute)
    parts = []
    included = _get(segment, "included") or []
    excluded = _get(segment, "excluded") or []
    rules = _get(segment, "rules") or []
    if included:
        parts.append(f"{who} with {key_attribute} {list_text(included)}")
    if rules:
        parts += [describe_conditions(r.get("conditions") or []) for r in rules]
    text = "nobody" if not parts else " · or ".join(parts)
    if excluded:
        text += f" · except {key_attribute} {list_text(excluded)}"
    return text


# --- Changes in words --------------------------------------------------------------------------

_LABELS = {
    "off_variant": "off variant", "default_serve": "default serve", "value_type": "value type",
    "client_visible": "client-visible", "key_attribute": "key attribute",
    "expires_at": "expiry date", "is_production": "production rules",
    "requires_approval": "approval required", "sort_order": "order",
}  # fmt: skip
_CAMEL = {
    "offVariant": "off_variant", "defaultServe": "default_serve", "valueType": "value_type",
    "clientVisible": "client_visible", "keyAttribute": "key_attribute",
}  # fmt: skip
_ORDER = (
    "enabled", "off_variant", "prerequisites", "rules", "default_serve", "name", "description",
    "kind", "value_type", "variants", "salt", "client_visible", "owner", "tags", "expires_at",
    "archived", "key_attribute", "included", "excluded",
)  # fmt: skip
_MEMBER_LISTS = {"included", "excluded", "tags"}


def _snake(data: Mapping[str, Any]) -> dict[str, Any]:
    return {_CAMEL.get(k, k): v for k, v in data.items()}


def _label(field: str) -> str:
    return _LABELS.get(field, field.replace("_", " "))


def _plain(value: Any) -> str:
    if value is None or value == "" or value == [] or value == {}:
        return "nothing"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (str, int, float, Mapping, list, tuple)):
        return value_text(value)
    return str(value)  # users, dates


def describe_changes(kind: str, before: Mapping[str, Any], after: Mapping[str, Any]) -> list[str]:
    """What changed between two versions of a flag state (``kind="state"``), a flag definition
    (``"flag"``), a segment (``"segment"``) or any other object, one sentence per change.
    Fields missing on one side count as empty (so a creation reads as everything being set)."""
    old, new = _snake(before), _snake(after)
    fields = [f for f in _ORDER if f in old or f in new]
    fields += sorted((set(old) | set(new)) - set(fields))
    lines: list[str] = []
    for field in fields:
        a, b = old.get(field), new.get(field)
        if a == b:
            continue
        lines += _field_change(kind, field, a, b)
    return lines


def _field_change(kind: str, field: str, old: Any, new: Any) -> list[str]:
    if field == "enabled" and kind == "state":
        return ["turned ON" if new else "turned OFF"]
    if field == "default_serve":
        return _serve_change("default serve (everyone else)", old, new)
    if field == "rules":
        return _rules_change(kind, old or [], new or [])
    if field == "prerequisites":
        return _prerequisites_change(old or [], new or [])
    if field == "variants" and (isinstance(old, Mapping) or isinstance(new, Mapping)):
        return _variants_change(old or {}, new or {})
    if field in _MEMBER_LISTS and isinstance(old or [], list) and isinstance(new or [], list):
        return _members_change(_label(field), old or [], new or [])
    if old in (None, "", [], {}):
        return [f"{_label(field)} set to {_plain(new)}"]
    if new in (None, "", [], {}):
        return [f"{_label(field)} cleared (was {_plain(old)})"]
    return [f"{_label(field)} changed from {_plain(old)} to {_plain(new)}"]


def _members_change(label: str, old: list[Any], new: list[Any]) -> list[str]:
    added = [v for v in new if v not in old]
    removed = [v for v in old if v not in new]
    lines = []
    if added:
        lines.append(f"added {list_text(added, 'and')} to {label}")
    if removed:
        lines.append(f"removed {list_text(removed, 'and')} from {label}")
    if not lines:
        lines.append(f"{label} reordered")
    return lines


def _variants_change(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    lines = [f"added variant {k} = {value_text(v)}" for k, v in new.items() if k not in old]
    lines += [f"removed variant {k} (was {value_text(v)})" for k, v in old.items() if k not in new]
    lines += [
        f"variant {k} changed from {value_text(old[k])} to {value_text(v)}"
        for k, v in new.items()
        if k in old and old[k] != v
    ]
    return lines


def _rollout_parts(serve: Any) -> list[tuple[str, int]] | None:
    if not isinstance(serve, Mapping) or not isinstance(serve.get("rollout"), Mapping):
        return None
    return [
        (str(v.get("variant")), int(v.get("weight", 0)))
        for v in serve["rollout"].get("variants") or []
    ]


def _serve_change(label: str, old: Any, new: Any) -> list[str]:
    old_parts, new_parts = _rollout_parts(old), _rollout_parts(new)
    if old_parts is not None and new_parts is not None:
        same_shape = [v for v, _ in old_parts] == [v for v, _ in new_parts]
        old_r, new_r = old["rollout"], new["rollout"]
        others = {k: v for k, v in old_r.items() if k != "variants"} == {
            k: v for k, v in new_r.items() if k != "variants"
        }
        if same_shape and others:
            changes = [
                f"{v} {percent(w0)} → {percent(w1)}"
                for (v, w0), (_, w1) in zip(old_parts, new_parts, strict=True)
                if w0 != w1
            ]
            return [f"{label}: rollout {', '.join(changes)}"]
    return [f"{label} changed from {describe_serve(old)} to {describe_serve(new)}"]


def _rule_key(index: int, rule: Mapping[str, Any]) -> str:
    return str(rule.get("id") or f"#{index + 1}")


def _rules_change(kind: str, old: list[Any], new: list[Any]) -> list[str]:
    describe = describe_rule if kind != "segment" else _segment_rule
    old_by = {_rule_key(i, r): r for i, r in enumerate(old)}
    new_by = {_rule_key(i, r): r for i, r in enumerate(new)}
    lines = [f"added rule {k}: {describe(r)}" for k, r in new_by.items() if k not in old_by]
    lines += [f"removed rule {k} ({describe(r)})" for k, r in old_by.items() if k not in new_by]
    for key, rule in new_by.items():
        previous = old_by.get(key)
        if previous is None or previous == rule:
            continue
        if previous.get("conditions") != rule.get("conditions"):
            was = describe_conditions(previous.get("conditions") or [])
            now = describe_conditions(rule.get("conditions") or [])
            lines.append(f"rule {key}: conditions changed from {was} to {now}")
        if previous.get("serve") != rule.get("serve"):
            lines += _serve_change(f"rule {key} serve", previous.get("serve"), rule.get("serve"))
        if previous.get("description") != rule.get("description"):
            lines.append(f"rule {key}: description changed to {_plain(rule.get('description'))}")
    kept_old = [k for k in old_by if k in new_by]
    kept_new = [k for k in new_by if k in old_by]
    if kept_old != kept_new:
        lines.append(f"rules reordered: {', '.join(kept_old)} → {', '.join(kept_new)}")
    return lines


def _segment_rule(rule: Mapping[str, Any], segments: Mapping[str, Any] | None = None) -> str:
    return "matching " + describe_conditions(rule.get("conditions") or [], segments)


def _variants_of(prerequisite: Mapping[str, Any]) -> str:
    return list_text(list(prerequisite.get("variants") or []))


def _prerequisites_change(old: list[Any], new: list[Any]) -> list[str]:
    old_by = {str(p.get("flag")): p for p in old}
    new_by = {str(p.get("flag")): p for p in new}
    lines = [
        f"added prerequisite: {describe_prerequisite(p)}"
        for k, p in new_by.items()
        if k not in old_by
    ]
    lines += [
        f"removed prerequisite: {describe_prerequisite(p)}"
        for k, p in old_by.items()
        if k not in new_by
    ]
    lines += [
        f"prerequisite changed: {describe_prerequisite(p)} (was {_variants_of(old_by[k])})"
        for k, p in new_by.items()
        if k in old_by and old_by[k] != p
    ]
    return lines
