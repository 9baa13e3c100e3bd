"""Stored operands written before the operand grammar (docs/ruleset.md), rewritten into it.

Before the grammar, the server accepted whatever Python's `fromisoformat` and `\\d` read, so a
database may hold `before 20250101`, or `semver_gt` with an Arabic-Indic digit in the major.
Such a rule no longer validates, and every save in its environment validates the whole
environment, so one old rule would block every change there, a kill switch included. Migration
0010 runs `upgrade_rules` over the stored rules (flag states, segments, and the stored ruleset
documents) once:

- a date the former parser read becomes the RFC 3339 form of the same instant (`20250101` ->
  `2025-01-01T00:00:00Z`; a date-time without an offset was UTC, so `2025-01-01T10:00` ->
  `2025-01-01T10:00:00Z`); sub-millisecond digits are dropped, as the grammar reads them;
- a version written with other scripts' digits or leading zeros becomes the ASCII version the
  digits spell (`1.0.0-01` -> `1.0.0-1`);
- anything else is left as it was (an integer beyond 2^53 has no faithful rewrite) and is
  reported, for someone to edit; the serving path sets such a flag aside (PARSE_ERROR) meanwhile.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from flagsite_sdk.engine.coerce import parse_instant, parse_semver
from flagsite_sdk.engine.grammar import in_number_range

DATE_OPERATORS = frozenset({"before", "after"})
SEMVER_OPERATORS = frozenset({"semver_eq", "semver_lt", "semver_gt"})
_DIGITS = re.compile(r"\d+")  # Unicode-aware on purpose: these are the digits to rewrite


@dataclass(frozen=True, slots=True)
class Rewrite:
    where: str
    old: Any
    new: Any  # None: no faithful rewrite, left as it was


def upgrade_date(text: str) -> str | None:
    """The grammar's form of a date the former parser (`fromisoformat`, naive = UTC) read."""
    if parse_instant(text) is not None:
        return text
    try:
        if len(text) == 10:
            return date.fromisoformat(text).isoformat()
        moment = datetime.fromisoformat(text)
    except (ValueError, OverflowError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    try:
        moment = moment.astimezone(UTC)
    except (ValueError, OverflowError):
        return None
    fraction = f".{moment.microsecond // 1000:03d}" if moment.microsecond else ""
    upgraded = f"{moment.year:04d}-{moment:%m-%dT%H:%M:%S}{fraction}Z"
    return upgraded if parse_instant(upgraded) is not None else None


def upgrade_version(text: str) -> str | None:
    """The grammar's form of a version written with non-ASCII digits or leading zeros."""
    if parse_semver(text) is not None:
        return text
    if "+" in text:
        head, build = text.split("+", 1)
        build = "+" + _ascii_digits(build)
    else:
        head, build = text, ""
    release, dash, pre = head.partition("-")
    release = ".".join(_number(part) for part in _ascii_digits(release).split("."))
    if dash:
        pre = ".".join(_number(part) for part in _ascii_digits(pre).split("."))
    upgraded = f"{release}{dash}{pre}{build}"
    return upgraded if parse_semver(upgraded) is not None else None


def _ascii_digits(text: str) -> str:
    return _DIGITS.sub(lambda m: "".join(str(unicodedata.decimal(c)) for c in m.group()), text)


def _number(part: str) -> str:
    prefix = "v" if part.startswith("v") else ""
    digits = part.removeprefix(prefix)
    if digits.isascii() and digits.isdigit():
        return prefix + (digits.lstrip("0") or "0")
    return part


def upgrade_rules(rules: Any, where: str) -> tuple[Any, list[Rewrite]]:
    """`rules` (a flag state's or a segment's) with their operands in the grammar where a
    faithful rewrite exists, and what was (or could not be) rewritten."""
    if not isinstance(rules, list):
        return rules, []
    found: list[Rewrite] = []
    upgraded = []
    for i, rule in enumerate(rules):
        conditions = rule.get("conditions") if isinstance(rule, dict) else None
        if not isinstance(conditions, list):
            upgraded.append(rule)
            continue
        new_conditions = []
        for j, condition in enumerate(conditions):
            new, changes = _upgrade_condition(condition, f"{where}[{i}].conditions[{j}]")
            new_conditions.append(new)
            found.extend(changes)
        upgraded.append({**rule, "conditions": new_conditions})
    return (upgraded if found else rules), found


def _upgrade_condition(condition: Any, where: str) -> tuple[Any, list[Rewrite]]:
    if not isinstance(condition, dict) or not isinstance(condition.get("values"), list):
        return condition, []
    op = condition.get("operator")
    beyond = [
        Rewrite(f"{where}.values[{k}]", v, None)
        for k, v in enumerate(condition["values"])
        if type(v) in (int, float) and not in_number_range(v)
    ]
    if beyond:
        return condition, beyond
    if op in DATE_OPERATORS:
        upgrade = upgrade_date
    elif op in SEMVER_OPERATORS:
        upgrade = upgrade_version
    else:
        return condition, []
    changes: list[Rewrite] = []
    values = list(condition["values"])
    for k, value in enumerate(values):
        if not isinstance(value, str):
            continue
        new = upgrade(value)
        if new != value:
            changes.append(Rewrite(f"{where}.values[{k}]", value, new))
            if new is not None:
                values[k] = new
    return ({**condition, "values": values} if changes else condition), changes


def upgrade_document(document: Any) -> tuple[Any, list[Rewrite]]:
    """A stored ruleset document with every flag's and segment's rules upgraded."""
    if not isinstance(document, dict):
        return document, []
    found: list[Rewrite] = []
    result = dict(document)
    for kind in ("flags", "segments"):
        entries = document.get(kind)
        if not isinstance(entries, dict):
            continue
        new_entries = {}
        for key, entry in entries.items():
            if isinstance(entry, dict):
                rules, changes = upgrade_rules(entry.get("rules"), f"{kind}.{key}.rules")
                if changes:
                    entry = {**entry, "rules": rules}
                    found.extend(changes)
            new_entries[key] = entry
        result[kind] = new_entries
    return (result if found else document), found


def unresolved(rewrites: list[Rewrite]) -> Iterator[Rewrite]:
    return (r for r in rewrites if r.new is None)
