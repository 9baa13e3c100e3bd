"""Deterministic bucketing shared by every SDK.

bucket = MurmurHash3_x86_32(utf8(salt + "." + value), seed 0, unsigned) mod 100000.
mmh3 is the same in every process and on every machine, unlike Python's
salted hash(); 100,000 buckets give a 0.001% resolution.
"""

from __future__ import annotations

import mmh3

from .types import BUCKETS


def bucket(salt: str, value: str) -> int:
    """Bucket in [0, 100000) of `value` for a flag salted with `salt`."""
    return mmh3.hash(f"{salt}.{value}", 0, False) % BUCKETS
