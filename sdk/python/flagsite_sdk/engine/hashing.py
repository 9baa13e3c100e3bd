"""Deterministic bucketing shared by every SDK.

bucket = MurmurHash3_x86_32(utf8(salt + "." + value), seed 0, unsigned) mod 100000.
mmh3 is the same in every process and on every machine, unlike Python's
salted hash(); 100,000 buckets give a 0.001% resolution. mmh3 always gets bytes:
a lone surrogate in a str has crashed it, so text.utf8 replaces those by U+FFFD.
"""

from __future__ import annotations

import mmh3

from .text import utf8
from .types import BUCKETS


def bucket(salt: str, value: str) -> int:
    """Bucket in [0, 100000) of `value` for a flag salted with `salt`."""
    return mmh3.hash(utf8(f"{salt}.{value}"), 0, False) % BUCKETS
