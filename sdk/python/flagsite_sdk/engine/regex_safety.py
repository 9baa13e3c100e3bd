"""Save-time screening of `matches` patterns against catastrophic backtracking.

Python's `re` backtracks, so a pattern such as `(a+)+$` takes exponential time on
a crafted input. We cannot decide safety in general; the rule below rejects the
shapes behind nearly all such blow-ups while keeping ordinary patterns legal:

- at most MAX_PATTERN_LENGTH characters;
- no backreferences (`\\1`, `(?P=name)`), which also make matching NP-hard;
- no repetition nested inside an unbounded repetition (`(a+)+`, `(a*b?)*`,
  `(\\w+\\s?){2,}`), and no unbounded repetition inside any repetition
  (`(a+){2,5}`); bounded inside bounded is fine (`(\\d{1,3}\\.){3}`). A count
  above 10 counts as unbounded;
- no alternation inside an unbounded repetition whose branches can start with the
  same character (`(a|ab)*`, `(\\w|\\d)+`).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import sre_parse as _parser
    from sre_constants import MAXREPEAT
else:
    from re import _parser
    from re._constants import MAXREPEAT

MAX_PATTERN_LENGTH = 256
_BOUNDED_OUTER = 10
_REPEATS = ("MAX_REPEAT", "MIN_REPEAT", "POSSESSIVE_REPEAT")


def regex_problem(pattern: str) -> tuple[str, str] | None:
    """(code, message) when `pattern` is invalid or unsafe, None when it may be used."""
    if len(pattern) > MAX_PATTERN_LENGTH:
        return "unsafe_regex", f"pattern longer than {MAX_PATTERN_LENGTH} characters"
    try:
        parsed = _parser.parse(pattern)
        re.compile(pattern)
    except (re.error, RecursionError, OverflowError) as exc:
        return "invalid_regex", f"invalid regular expression: {exc}"
    problem = _scan(list(parsed.data), inside_unbounded=False, inside_repeat=False)
    if problem is not None:
        return "unsafe_regex", problem
    return None


def _scan(
    items: list[tuple[Any, Any]], *, inside_unbounded: bool, inside_repeat: bool
) -> str | None:
    for op, arg in items:
        name = str(op)
        if name in ("GROUPREF", "GROUPREF_EXISTS"):
            return "backreferences are not allowed"
        if name in _REPEATS:
            _low, high, sub = arg
            unbounded = high == MAXREPEAT or high > _BOUNDED_OUTER
            if high > 1 and (inside_unbounded or (inside_repeat and unbounded)):
                return "nested quantifier inside a repetition (e.g. (a+)+)"
            if unbounded and _has_overlapping_branches(list(sub)):
                return "alternation with overlapping branches inside a repetition"
            found = _scan(
                list(sub),
                inside_unbounded=inside_unbounded or unbounded,
                inside_repeat=inside_repeat or high > 1,
            )
            if found is not None:
                return found
        elif name == "SUBPATTERN":
            found = _scan(
                list(arg[-1]), inside_unbounded=inside_unbounded, inside_repeat=inside_repeat
            )
            if found is not None:
                return found
        elif name == "BRANCH":
            for branch in arg[1]:
                found = _scan(
                    list(branch), inside_unbounded=inside_unbounded, inside_repeat=inside_repeat
                )
                if found is not None:
                    return found
        elif name in ("ASSERT", "ASSERT_NOT"):
            found = _scan(
                list(arg[1]), inside_unbounded=inside_unbounded, inside_repeat=inside_repeat
            )
            if found is not None:
                return found
    return None


def _has_overlapping_branches(items: list[tuple[Any, Any]]) -> bool:
    """True if a top-level alternation has two branches that may start alike."""
    for op, arg in items:
        name = str(op)
        if name == "SUBPATTERN":
            return _has_overlapping_branches(list(arg[-1]))
        if name == "BRANCH":
            firsts = [_first_literal(list(b)) for b in arg[1]]
            # a branch not starting with a plain literal might match anything
            if any(f is None for f in firsts):
                return True
            return len(set(firsts)) != len(firsts)
        if name == "IN":
            return False
    return False


def _first_literal(items: list[tuple[Any, Any]]) -> int | None:
    if not items:
        return None
    op, arg = items[0]
    name = str(op)
    if name == "LITERAL":
        return int(arg)
    if name == "SUBPATTERN":
        return _first_literal(list(arg[-1]))
    return None
