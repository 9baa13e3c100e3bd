"""Strings as every SDK sees them: bounded in length, and valid Unicode before native code.

Python's json (like JavaScript) yields strings holding lone UTF-16 surrogates, which
are not Unicode text. Native code (mmh3, re2) must never receive one: mmh3 has been
seen to crash the process on it. Every lone surrogate is replaced by U+FFFD before a
string is hashed or compared, which is exactly what JavaScript's TextEncoder does,
so every SDK buckets and compares such strings alike.

A context string longer than MAX_VALUE_LENGTH code points counts as absent, so no
operator or hash ever runs on unbounded input sent by a browser.
"""

from __future__ import annotations

from typing import Any

MAX_VALUE_LENGTH = 4096


def well_formed(text: str) -> str:
    """`text` with every lone surrogate replaced by U+FFFD (surrogate pairs are joined)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        # UTF-16 with surrogatepass keeps each code unit; decoding pairs the valid
        # pairs again and turns each unpaired unit into U+FFFD, as TextEncoder does.
        return text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
    return text


def utf8(text: str) -> bytes:
    """UTF-8 bytes of `text` after the U+FFFD replacement; the fast path is one encode."""
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        return well_formed(text).encode("utf-8")


def is_valid_text(text: str) -> bool:
    """False if `text` holds a lone surrogate or a NUL (refused in keys, salts, names)."""
    if "\x00" in text:
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def bounded(value: Any) -> Any:
    """`value`, or None when it is a string over MAX_VALUE_LENGTH code points."""
    if type(value) is str and len(value) > MAX_VALUE_LENGTH:
        return None
    return value
