"""Which flags a change makes evaluate differently: a pure comparison of ruleset documents.

A flag's evaluation depends on its own entry, on every segment its rules (or those segments'
rules) name, and on its prerequisites' evaluation. Two documents are compared per flag over
that closure, so a segment edit is attributed to every flag that uses the segment, in every
environment, and an edit of a flag used as a prerequisite to the flags that depend on it.
Informative fields (description, versions, timestamps) are not part of evaluation.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

Document = Mapping[str, Any]
_SEGMENT_OPERATORS = frozenset({"in_segment", "not_in_segment"})
_INFORMATIVE = frozenset({"description", "version"})


def _conditions(rules: Any) -> Iterator[Mapping[str, Any]]:
    for rule in rules if isinstance(rules, list) else ():
        if isinstance(rule, Mapping):
            for condition in rule.get("conditions") or ():
                if isinstance(condition, Mapping):
                    yield condition


def _segment_refs(rules: Any) -> Iterator[str]:
    for condition in _conditions(rules):
        if condition.get("operator") in _SEGMENT_OPERATORS:
            for value in condition.get("values") or ():
                if isinstance(value, str):
                    yield value


def _evaluated(entry: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in entry.items() if k not in _INFORMATIVE}


def _segments_used(doc: Document, rules: Any) -> dict[str, Any]:
    """Every segment reachable from ``rules`` (segments may name segments), by key."""
    segments: Mapping[str, Any] = doc.get("segments") or {}
    found: dict[str, Any] = {}
    pending = list(_segment_refs(rules))
    while pending:  # iterative: a long chain of segments must not exhaust the stack
        key = pending.pop()
        if key in found:
            continue
        entry = segments.get(key)
        found[key] = _evaluated(entry) if isinstance(entry, Mapping) else None
        if isinstance(entry, Mapping):
            pending.extend(_segment_refs(entry.get("rules")))
    return found


def _own_inputs(doc: Document, key: str) -> Any:
    flags: Mapping[str, Any] = doc.get("flags") or {}
    entry = flags.get(key)
    if not isinstance(entry, Mapping):
        return None
    return (_evaluated(entry), _segments_used(doc, entry.get("rules")))


def _prerequisites(doc: Document, key: str) -> list[str]:
    flags: Mapping[str, Any] = doc.get("flags") or {}
    entry = flags.get(key)
    if not isinstance(entry, Mapping):
        return []
    return [
        p["flag"]
        for p in entry.get("prerequisites") or ()
        if isinstance(p, Mapping) and isinstance(p.get("flag"), str)
    ]


def _new_and_off(key: str, old: Mapping[str, Any], new: Mapping[str, Any]) -> bool:
    """A flag that appears switched off changes no answer anyone relied on: nothing could
    evaluate it before, and it now serves its off variant."""
    entry = new.get(key)
    return key not in old and isinstance(entry, Mapping) and not entry.get("enabled")


def changed_flags(before: Document, after: Document) -> list[str]:
    """Keys of the flags whose evaluation can differ between ``before`` and ``after``
    (added and removed flags included), sorted."""
    old: Mapping[str, Any] = before.get("flags") or {}
    new: Mapping[str, Any] = after.get("flags") or {}
    keys = set(old) | set(new)
    directly = {
        k
        for k in keys
        if _own_inputs(before, k) != _own_inputs(after, k) and not _new_and_off(k, old, new)
    }
    # A flag also changes when any flag in its prerequisite closure changes (either document's
    # prerequisites count, since the edit may have added or removed one).
    changed = set(directly)
    grew = True
    while grew:
        grew = False
        for key in keys - changed:
            deps = set(_prerequisites(before, key)) | set(_prerequisites(after, key))
            if deps & changed:
                changed.add(key)
                grew = True
    return sorted(changed)
