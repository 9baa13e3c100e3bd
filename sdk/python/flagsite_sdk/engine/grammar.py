"""The operand grammar (docs/ruleset.md, "Operand grammar"): dates, versions and numbers.

Every engine must read exactly the same operands and context values, so the grammar is
written once, as data, in ruleset.schema.json (``$defs`` ``instant``, ``semver`` and
``operandNumber``). This module reads it from there; the Node engine holds the same strings
(sdk/js/packages/node/src/engine/grammar.ts) and a test checks that they are equal.

The patterns use only what Python's ``re`` and JavaScript's ``RegExp`` read alike: explicit
ASCII classes such as ``[0-9]`` (never ``\\d``, which is Unicode-aware in Python), plain and
non-capturing groups (capturing groups are numbered the same in both), no named groups and no
flags. They are matched whole (``fullmatch`` here), so Python's ``$`` never lets a trailing
newline through.

Library parsers were considered and not used: ``datetime.fromisoformat`` and ``Date.parse``
each accept a different superset of RFC 3339 (``20250101``, ``2025-W01-1``, ``2025-01-01T1000``,
Unicode digits), which is how the two engines came to disagree; a strict grammar written once
and mirrored is the only way to make them accept the same strings.
"""

from __future__ import annotations

import json
import re
from importlib import resources
from typing import Any

_DEFS: dict[str, Any] = json.loads(
    resources.files(__package__).joinpath("ruleset.schema.json").read_text("utf-8")
)["$defs"]

INSTANT_PATTERN: str = _DEFS["instant"]["pattern"]
SEMVER_PATTERN: str = _DEFS["semver"]["pattern"]
# The largest magnitude a number may have in an operand, and still count as a number in a
# context: 2**53 - 1, the last integer every JSON reader (JavaScript's doubles included)
# holds exactly. Beyond it, two readers of the same JSON text may hold different values.
NUMBER_LIMIT: int = _DEFS["operandNumber"]["maximum"]
if _DEFS["operandNumber"]["minimum"] != -NUMBER_LIMIT:  # pragma: no cover - a broken schema
    raise RuntimeError("ruleset.schema.json: operandNumber must be symmetric")

INSTANT_RE = re.compile(INSTANT_PATTERN, re.ASCII)
SEMVER_RE = re.compile(SEMVER_PATTERN, re.ASCII)


def in_number_range(value: int | float) -> bool:
    """True for a finite number within ±NUMBER_LIMIT (False for NaN and the infinities)."""
    return -NUMBER_LIMIT <= value <= NUMBER_LIMIT


def is_grammar_number(value: Any) -> bool:
    """An int or float (never a bool) within the number range."""
    t = type(value)
    return (t is int or t is float) and in_number_range(value)
