"""Parsing of semantic versions and instants, for operands and context values."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from functools import lru_cache
from typing import Any

_SEMVER = re.compile(
    r"v?(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(?:-([0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?"
    r"(?:\+[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*)?"
)

# A parsed version orders like SemVer 2.0 when compared as a tuple: the release
# triple, then 1 for "no pre-release" (which ranks above any pre-release), then
# the pre-release identifiers, numeric ones below alphanumeric ones.
# A number is kept as (digit count, digits) without leading zeros, which orders
# exactly like its value for any length; int() refuses more than 4,300 digits.
Number = tuple[int, str]
SemverKey = tuple[Number, Number, Number, int, tuple[tuple[int, Number, str], ...]]
_NO_NUMBER: Number = (0, "")


def _number(digits: str) -> Number:
    significant = digits.lstrip("0") or "0"
    return (len(significant), significant)


@lru_cache(maxsize=4096)
def parse_semver(text: str) -> SemverKey | None:
    """Ordering key of a SemVer 2.0 string (optional leading "v"), None if invalid."""
    m = _SEMVER.fullmatch(text)
    if m is None:
        return None
    release = (_number(m.group(1)), _number(m.group(2)), _number(m.group(3)))
    pre = m.group(4)
    if pre is None:
        return (*release, 1, ())
    ids = tuple((0, _number(p), "") if p.isdigit() else (1, _NO_NUMBER, p) for p in pre.split("."))
    return (*release, 0, ids)


def parse_instant(text: str) -> float | None:
    """Epoch milliseconds of an ISO 8601 date or date-time; naive means UTC."""
    try:
        if len(text) == 10:
            d = date.fromisoformat(text)
            return datetime(d.year, d.month, d.day, tzinfo=UTC).timestamp() * 1000.0
        dt = datetime.fromisoformat(text)
        if dt.tzinfo is None:
            dt = dt.replace(tzinfo=UTC)
        return dt.timestamp() * 1000.0
    except (ValueError, OverflowError):  # OverflowError: year 1 or 9999 pushed out by an offset
        return None


def instant_of(value: Any) -> float | None:
    """Epoch milliseconds of a context value: ISO string, epoch-ms number, date(time)."""
    t = type(value)
    if t is int or t is float:
        return float(value) if value == value else None
    if t is str:
        return _cached_instant(value)
    if isinstance(value, datetime):
        dt = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
        try:
            return dt.timestamp() * 1000.0
        except (ValueError, OverflowError):
            return None
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=UTC).timestamp() * 1000.0
    return None


@lru_cache(maxsize=4096)
def _cached_instant(text: str) -> float | None:
    return parse_instant(text)
