"""Semantic versions and instants, read by the operand grammar (grammar.py), for operands and
context values alike."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from typing import Any

from .grammar import INSTANT_RE, SEMVER_RE, in_number_range

# A parsed version orders like SemVer 2.0 when compared as a tuple: the release
# triple, then 1 for "no pre-release" (which ranks above any pre-release), then
# the pre-release identifiers, numeric ones below alphanumeric ones.
# A number is kept as (digit count, digits), which orders exactly like its value for any
# length (the grammar allows no leading zeros); int() refuses more than 4,300 digits.
Number = tuple[int, str]
SemverKey = tuple[Number, Number, Number, int, tuple[tuple[int, Number, str], ...]]
_NO_NUMBER: Number = (0, "")


def _number(digits: str) -> Number:
    return (len(digits), digits)


@lru_cache(maxsize=4096)
def parse_semver(text: str) -> SemverKey | None:
    """Ordering key of a version in the grammar (SemVer 2.0.0, optional leading "v")."""
    m = SEMVER_RE.fullmatch(text)
    if m is None:
        return None
    release = (_number(m.group(1)), _number(m.group(2)), _number(m.group(3)))
    pre = m.group(4)
    if pre is None:
        return (*release, 1, ())
    # the grammar made every identifier ASCII, so isdigit() means [0-9]+ here
    ids = tuple((0, _number(p), "") if p.isdigit() else (1, _NO_NUMBER, p) for p in pre.split("."))
    return (*release, 0, ids)


# Days before each month in a common year; a leap year adds one from March on.
_DAYS_BEFORE_MONTH = (0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334)
_MONTH_DAYS = (31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)
_MS_PER_DAY = 86_400_000
# Days from 0000-01-01 (proleptic Gregorian, year 0 a leap year) to 1970-01-01.
_EPOCH_DAYS = 719_528
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_MS = timedelta(milliseconds=1)


def _is_leap(year: int) -> bool:
    return year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)


def _days_since_epoch(year: int, month: int, day: int) -> int:
    # Years are 0..9999 here, so the leap days before `year` are plain ceiling divisions:
    # multiples of 4, less multiples of 100, plus multiples of 400, in [0, year).
    leap_days = (year + 3) // 4 - (year + 99) // 100 + (year + 399) // 400
    days = 365 * year + leap_days + _DAYS_BEFORE_MONTH[month - 1] + day - 1
    if month > 2 and _is_leap(year):
        days += 1
    return days - _EPOCH_DAYS


def parse_instant(text: str) -> int | None:
    """Epoch milliseconds of a date or date-time in the grammar, None for anything else.

    Integer arithmetic only, identical in the Node engine: a full-date is midnight UTC, the
    offset is subtracted, and fraction digits past the millisecond are dropped.
    """
    m = INSTANT_RE.fullmatch(text)
    if m is None:
        return None
    year, month, day = int(m.group(1)), int(m.group(2)), int(m.group(3))
    if day > _MONTH_DAYS[month - 1] + (month == 2 and _is_leap(year)):
        return None
    ms = _days_since_epoch(year, month, day) * _MS_PER_DAY
    if m.group(4) is None:
        return ms
    ms += ((int(m.group(4)) * 60 + int(m.group(5))) * 60 + int(m.group(6))) * 1000
    fraction = m.group(7)
    if fraction is not None:
        ms += int(fraction[:3].ljust(3, "0"))
    if m.group(8) is not None:
        offset = (int(m.group(9)) * 60 + int(m.group(10))) * 60_000
        ms += -offset if m.group(8) == "+" else offset
    return ms


def instant_of(value: Any) -> int | float | None:
    """Epoch milliseconds of a context value: a grammar string, epoch milliseconds within
    the number range, or (Python only) a date or datetime; None for anything else."""
    t = type(value)
    if t is int or t is float:
        return value if in_number_range(value) else None
    if t is str:
        return _cached_instant(value)
    if isinstance(value, datetime):
        # naive means UTC; sub-millisecond digits are dropped, as for strings (floor)
        dt = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
        return (dt - _EPOCH) // _ONE_MS
    if isinstance(value, date):
        return _days_since_epoch(value.year, value.month, value.day) * _MS_PER_DAY
    return None


@lru_cache(maxsize=4096)
def _cached_instant(text: str) -> int | None:
    return parse_instant(text)
