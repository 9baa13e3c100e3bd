"""`matches` patterns: RE2 syntax and semantics, so every match takes linear time.

RE2 (the `google-re2` bindings) never backtracks: the time to search a string grows
linearly with its length whatever the pattern, so no pattern sent to the admin can
stall a process. Features that need backtracking (backreferences, lookaround, atomic
groups, possessive quantifiers) are refused by RE2 itself, which makes the pattern
invalid at save time. The Node SDK uses an RE2 port, so the syntax is the same there.
"""

from __future__ import annotations

from typing import Any

import re2

MAX_PATTERN_LENGTH = 256
_CASE_INSENSITIVE = "(?i)"


def _options() -> Any:
    options = re2.Options()
    options.log_errors = False  # a refused pattern is reported to the user, not to stderr
    # Only "is there a match" matters: without submatches RE2 answers from its DFA alone,
    # about 2 ns a byte, instead of running its slower NFA over the matched span.
    options.never_capture = True
    return options


_OPTIONS = _options()


def compile_pattern(pattern: str, *, case_insensitive: bool = False) -> Any:
    """The compiled RE2 program; raises re2.error (or UnicodeError) if RE2 refuses it.

    Search it with UTF-8 bytes (text.utf8): the binding then skips mapping byte
    offsets back to str positions, and no lone surrogate can reach it.
    """
    source = _CASE_INSENSITIVE + pattern if case_insensitive else pattern
    return re2.compile(source, _OPTIONS)


def regex_problem(pattern: str) -> tuple[str, str] | None:
    """(code, message) when RE2 refuses `pattern` or it is too long, None when usable."""
    if len(pattern) > MAX_PATTERN_LENGTH:
        return "invalid_regex", f"pattern longer than {MAX_PATTERN_LENGTH} characters"
    try:
        pattern.encode("utf-8")  # a lone surrogate must not reach native code
        compile_pattern(pattern)
    except UnicodeEncodeError:
        return "invalid_regex", "pattern is not valid Unicode (lone surrogate)"
    except Exception as exc:  # re2.error, plus anything else the binding raises
        return "invalid_regex", f"not a valid RE2 regular expression: {_reason(exc)}"
    return None


def _reason(exc: Exception) -> str:
    first = exc.args[0] if exc.args else None
    text = first.decode("utf-8", "replace") if isinstance(first, bytes) else str(exc)
    return (text or type(exc).__name__)[:200]
