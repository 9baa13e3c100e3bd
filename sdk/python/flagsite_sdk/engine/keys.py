"""What a key is (flags and segments; the server applies it to every key it stores).

The one definition is the ``key`` pattern in ruleset.schema.json; this module reads it from
there, so the schema, the fast shape check and the server's model validator cannot drift.
"""

from __future__ import annotations

import json
import re
from importlib import resources

_SCHEMA_TEXT = resources.files(__package__).joinpath("ruleset.schema.json").read_text("utf-8")
KEY_PATTERN: str = json.loads(_SCHEMA_TEXT)["$defs"]["key"]["pattern"]
KEY_MAX_LENGTH = 128
KEY_RULE = (
    "Use letters, digits, '-' or '_' (no dots or spaces), starting with a letter or digit, "
    f"at most {KEY_MAX_LENGTH} characters."
)
# fullmatch, not search: the schema's "$" would let a trailing newline through in Python.
KEY_RE = re.compile(KEY_PATTERN.removeprefix("^").removesuffix("$"))
_ALLOWED = re.compile(r"[A-Za-z0-9_-]")


def is_key(value: object) -> bool:
    return type(value) is str and KEY_RE.fullmatch(value) is not None


def key_problem(value: str) -> str | None:
    """None for a valid key, otherwise a sentence that says what is wrong with it."""
    if is_key(value):
        return None
    if not value:
        return "A key cannot be empty. " + KEY_RULE
    if len(value) > KEY_MAX_LENGTH:
        return f"{value[:20]!r}… is {len(value)} characters long. {KEY_RULE}"
    bad = next((c for c in value if not _ALLOWED.fullmatch(c)), None)
    if bad is not None:
        return f"{value!r} is not a valid key: {bad!r} is not allowed. {KEY_RULE}"
    return f"{value!r} is not a valid key: it must start with a letter or digit. {KEY_RULE}"
