"""Validation of an event batch.

A hand-written validator rather than DRF serializers: a 10,000-event batch must validate in a
few milliseconds, and every bad event is reported with its index, field and reason.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, TypedDict

from analytics.models import EventKind

MAX_BATCH_EVENTS = 10_000
MAX_ERRORS_REPORTED = 200
MAX_ASSIGNMENTS = 100
MAX_KEY = 100
MAX_CONTEXT_KEY = 256
# The randomization units an event carries (attribute name -> value): a rollout that buckets by
# ``accountId`` analyses per account, so its events must say which account sent them.
MAX_UNITS = 8
MAX_UNIT_NAME = 100  # as long as a plan's bucket_by may be
MAX_UNIT_VALUE = 256  # as long as a context key
FUTURE_TOLERANCE = timedelta(hours=1)
# PostgreSQL's limit for a time-zone offset; real zones stay within +-14:00.
MAX_UTC_OFFSET = timedelta(hours=15, minutes=59)
_KINDS = frozenset(EventKind.values)


class FieldError(TypedDict):
    index: int | None
    field: str
    message: str


@dataclass(frozen=True, slots=True)
class Event:
    kind: str
    name: str  # flag key (exposure) or metric name (custom); else ""
    variant: str
    context_key: str
    occurred_at: datetime
    value: float | None
    assignments: dict[str, str]
    units: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Batch:
    batch_id: str
    events: list[Event]
    # Events the sending SDK dropped (its queue was full) since its previous batch.
    client_dropped: int = 0


class BatchInvalidError(Exception):
    def __init__(self, errors: list[FieldError]) -> None:
        super().__init__(f"{len(errors)} invalid field(s)")
        self.errors = errors


class _RejectError(Exception):
    def __init__(self, field: str, message: str) -> None:
        self.field = field
        self.message = message


def _key(raw: Any, field: str, limit: int = MAX_KEY) -> str:
    if not isinstance(raw, str) or not raw:
        raise _RejectError(field, "must be a non-empty string")
    if len(raw) > limit:
        raise _RejectError(field, f"must be at most {limit} characters")
    return raw


def _number(raw: Any, field: str) -> float:
    if isinstance(raw, bool) or not isinstance(raw, int | float) or not math.isfinite(raw):
        raise _RejectError(field, "must be a finite number")
    return float(raw)


def offset_problem(moment: datetime) -> str | None:
    """Why an aware date-time cannot be used, or None: its offset must be within +-15:59."""
    offset = moment.utcoffset()
    if offset is not None and abs(offset) > MAX_UTC_OFFSET:
        return "has a time-zone offset beyond +-15:59"
    return None


def _timestamp(raw: Any, oldest: datetime, newest: datetime) -> datetime:
    if not isinstance(raw, str):
        raise _RejectError("timestamp", "must be an ISO 8601 string with a time zone")
    try:
        moment = datetime.fromisoformat(raw)
    except ValueError:
        raise _RejectError("timestamp", "is not an ISO 8601 date-time") from None
    if moment.tzinfo is None:
        raise _RejectError("timestamp", "needs a time zone (for example 'Z' or '+00:00')")
    problem = offset_problem(moment)
    if problem:
        raise _RejectError("timestamp", problem)
    if moment < oldest:
        raise _RejectError("timestamp", "is older than the raw-event retention period")
    if moment > newest:
        raise _RejectError("timestamp", "is in the future")
    return moment


def _assignments(raw: Any) -> dict[str, str]:
    if not isinstance(raw, dict):
        raise _RejectError("assignments", "must be an object of flag key to variant")
    if len(raw) > MAX_ASSIGNMENTS:
        raise _RejectError("assignments", f"may name at most {MAX_ASSIGNMENTS} flags")
    for flag, variant in raw.items():
        if not flag or len(flag) > MAX_KEY:
            raise _RejectError("assignments", f"flag key {flag[:MAX_KEY]!r} is empty or too long")
        if not isinstance(variant, str) or not variant or len(variant) > MAX_KEY:
            raise _RejectError(f"assignments.{flag}", "must be a non-empty variant name")
    return raw


def _units(raw: Any) -> dict[str, str]:
    """Attribute name -> the unit's id. Names follow the engine's attribute grammar (any
    non-empty string, as a rule's ``attribute`` or a rollout's ``bucketBy``); values are
    strings only: the SDKs send the bucketing value as text (an integer id as its digits), so
    a number or a boolean here is a client bug that would otherwise split one unit in two."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise _RejectError("units", "must be an object of attribute name to unit id")
    if len(raw) > MAX_UNITS:
        raise _RejectError("units", f"may name at most {MAX_UNITS} attributes")
    for name, value in raw.items():
        if not name or len(name) > MAX_UNIT_NAME:
            raise _RejectError(
                "units", f"attribute name {name[:MAX_UNIT_NAME]!r} must be 1-{MAX_UNIT_NAME} chars"
            )
        if not isinstance(value, str):
            raise _RejectError(f"units.{name}", "must be a string (send a numeric id as text)")
        if not value:
            raise _RejectError(f"units.{name}", "must not be empty")
        if len(value) > MAX_UNIT_VALUE:
            raise _RejectError(f"units.{name}", f"must be at most {MAX_UNIT_VALUE} characters")
    return raw


def _event(raw: Any, oldest: datetime, newest: datetime) -> Event:
    if not isinstance(raw, dict):
        raise _RejectError("", "must be an object")
    kind = raw.get("type")
    if kind not in _KINDS:
        raise _RejectError("type", f"must be one of {', '.join(sorted(_KINDS))}")
    context_key = _key(raw.get("context_key"), "context_key", MAX_CONTEXT_KEY)
    occurred_at = _timestamp(raw.get("timestamp"), oldest, newest)
    assignments = _assignments(raw.get("assignments"))
    units = _units(raw.get("units"))
    name = ""
    variant = ""
    value: float | None = None
    if kind == EventKind.EXPOSURE:
        name = _key(raw.get("flag"), "flag")
        variant = _key(raw.get("variant"), "variant")
    elif kind == EventKind.LATENCY:
        value = _number(raw.get("value"), "value")
        if value < 0:
            raise _RejectError("value", "a latency cannot be negative")
    elif kind == EventKind.CUSTOM:
        name = _key(raw.get("name"), "name")
        value = _number(raw.get("value"), "value")
    elif raw.get("value") is not None:
        value = _number(raw["value"], "value")
    return Event(kind, name, variant, context_key, occurred_at, value, assignments, units)


def validate_batch(payload: Any, now: datetime, retention: timedelta) -> Batch:
    """The whole batch, or BatchInvalidError listing every bad field (up to MAX_ERRORS_REPORTED)."""
    if not isinstance(payload, dict):
        raise BatchInvalidError([{"index": None, "field": "", "message": "must be a JSON object"}])
    errors: list[FieldError] = []
    batch_id = payload.get("batch_id")
    if not isinstance(batch_id, str) or not 0 < len(batch_id) <= MAX_KEY:
        errors.append(
            {"index": None, "field": "batch_id", "message": "must be a string of 1-100 chars"}
        )
    client_dropped = 0
    sdk = payload.get("sdk")
    if sdk is not None:
        dropped = sdk.get("dropped", 0) if isinstance(sdk, dict) else None
        if isinstance(dropped, bool) or not isinstance(dropped, int) or not 0 <= dropped < 2**31:
            errors.append(
                {"index": None, "field": "sdk.dropped", "message": "must be a whole number >= 0"}
            )
        else:
            client_dropped = dropped
    raw_events = payload.get("events")
    if not isinstance(raw_events, list) or not 0 < len(raw_events) <= MAX_BATCH_EVENTS:
        errors.append(
            {
                "index": None,
                "field": "events",
                "message": f"must be a list of 1 to {MAX_BATCH_EVENTS} events",
            }
        )
        raise BatchInvalidError(errors)
    oldest = now - retention
    newest = now + FUTURE_TOLERANCE
    events: list[Event] = []
    for index, raw in enumerate(raw_events):
        try:
            events.append(_event(raw, oldest, newest))
        except _RejectError as reject:
            errors.append({"index": index, "field": reject.field, "message": reject.message})
            if len(errors) >= MAX_ERRORS_REPORTED:
                break
    if errors:
        raise BatchInvalidError(errors)
    assert isinstance(batch_id, str)
    return Batch(batch_id, events, client_dropped)
