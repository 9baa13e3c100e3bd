"""The operand grammar is written once (ruleset.schema.json) and read alike by both engines."""

from __future__ import annotations

import json
import re
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from flagsite_sdk.engine.coerce import instant_of, parse_instant
from flagsite_sdk.engine.grammar import INSTANT_PATTERN, NUMBER_LIMIT, SEMVER_PATTERN
from hypothesis import given
from hypothesis import strategies as st

REPO = Path(__file__).resolve().parents[3]
GRAMMAR_TS = REPO / "sdk" / "js" / "packages" / "node" / "src" / "engine" / "grammar.ts"


def _ts_constant(name: str) -> str:
    """A string constant of grammar.ts (its escapes are JSON's: \\\\ and \\" only)."""
    text = GRAMMAR_TS.read_text("utf-8")
    found = re.search(rf'export const {name} =\s*("(?:[^"\\]|\\.)*");', text)
    assert found is not None, name
    value: str = json.loads(found.group(1))
    return value


def test_the_node_engine_holds_the_same_patterns() -> None:
    assert _ts_constant("INSTANT_PATTERN") == INSTANT_PATTERN
    assert _ts_constant("SEMVER_PATTERN") == SEMVER_PATTERN
    limit = re.search(r"export const NUMBER_LIMIT = (\d+);", GRAMMAR_TS.read_text("utf-8"))
    assert limit is not None
    assert int(limit.group(1)) == NUMBER_LIMIT == 2**53 - 1


@pytest.mark.parametrize("pattern", [INSTANT_PATTERN, SEMVER_PATTERN])
def test_patterns_use_only_what_python_and_javascript_read_alike(pattern: str) -> None:
    # \d \w \s are Unicode-aware in Python, ASCII in JavaScript; named groups differ in syntax;
    # lookarounds and flags are not needed and not portable enough to allow.
    assert not re.search(r"\\[dDwWsSbB]|\(\?P?<|\(\?[=!]|\(\?[aiLmsux]", pattern)
    assert pattern.startswith("^")
    assert pattern.endswith("$")


def test_full_dates_are_midnight_utc_and_offsets_move_the_instant() -> None:
    assert parse_instant("2024-01-01") == 1_704_067_200_000
    assert parse_instant("2024-01-01T01:00:00+01:00") == 1_704_067_200_000
    assert parse_instant("2023-12-31T19:00:00-05:00") == 1_704_067_200_000
    assert parse_instant("1970-01-01T00:00:00.9999Z") == 999  # truncated, not rounded
    assert parse_instant("1969-12-31T23:59:59.9995Z") == -1  # an earlier millisecond


@given(
    st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30)),
    st.integers(-23 * 60 - 59, 23 * 60 + 59),
)
def test_instants_agree_with_the_standard_library_within_its_range(
    moment: datetime, offset_minutes: int
) -> None:
    """An independent check of the integer arithmetic (the Node engine runs the same steps,
    and the shared vectors compare the two)."""
    zone = timedelta(minutes=offset_minutes)
    sign = "-" if offset_minutes < 0 else "+"
    hours, minutes = divmod(abs(offset_minutes), 60)
    text = f"{moment.year:04d}-" + moment.strftime("%m-%dT%H:%M:%S") + f".{moment.microsecond:06d}"
    text += f"{sign}{hours:02d}:{minutes:02d}"
    aware = moment.replace(tzinfo=UTC) - zone
    expected = (aware - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(milliseconds=1)

    assert parse_instant(text) == expected
    assert parse_instant(moment.date().isoformat()) == instant_of(moment.date())
    assert instant_of(moment.replace(tzinfo=UTC) - zone) == expected


def test_python_dates_and_datetimes_are_instants_too() -> None:
    assert instant_of(date(2024, 1, 1)) == 1_704_067_200_000
    assert instant_of(datetime(2024, 1, 1)) == 1_704_067_200_000  # naive means UTC
    assert instant_of(2**53) is None  # epoch milliseconds beyond the number range
    assert instant_of(float("nan")) is None
