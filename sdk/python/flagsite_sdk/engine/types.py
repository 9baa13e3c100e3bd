"""Result and error types shared by the validator, the compiler and the callers."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

RULESET_SCHEMA_VERSION = 1
BUCKETS = 100_000


class Reason(enum.StrEnum):
    """Why a value was served, in OpenFeature vocabulary."""

    STATIC = "STATIC"
    TARGETING_MATCH = "TARGETING_MATCH"
    SPLIT = "SPLIT"
    DEFAULT = "DEFAULT"
    DISABLED = "DISABLED"
    ERROR = "ERROR"


class ErrorCode(enum.StrEnum):
    """OpenFeature error codes; set only when reason is ERROR."""

    FLAG_NOT_FOUND = "FLAG_NOT_FOUND"
    TYPE_MISMATCH = "TYPE_MISMATCH"
    PARSE_ERROR = "PARSE_ERROR"
    TARGETING_KEY_MISSING = "TARGETING_KEY_MISSING"
    GENERAL = "GENERAL"


@dataclass(frozen=True, slots=True)
class EvaluationDetails:
    """The outcome of one evaluation.

    Instances for every static outcome are built at compile time and shared, so
    evaluating allocates nothing on the common path; treat `value` as read-only
    (json values are shared between evaluations).
    `notes` explains non-error surprises: a condition skipped because the context
    value had the wrong type, a failed prerequisite, a missing bucket-by attribute.
    """

    flag_key: str
    value: Any
    variant: str | None
    reason: Reason
    error_code: ErrorCode | None = None
    error_message: str | None = None
    rule_id: str | None = None
    flag_version: int | None = None
    notes: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class RulesetError:
    """One validation problem; `path` points into the document, e.g.
    `flags.new-pdf-engine.rules[2].conditions[0].operator`."""

    path: str
    message: str
    code: str


class RulesetInvalid(Exception):  # noqa: N818 - the public name is fixed by the API contract
    """Raised by compile_ruleset when the document does not validate."""

    def __init__(self, errors: list[RulesetError]) -> None:
        self.errors = errors
        shown = "; ".join(f"{e.path}: {e.message}" for e in errors[:5])
        more = f" (+{len(errors) - 5} more)" if len(errors) > 5 else ""
        super().__init__(f"invalid ruleset: {shown}{more}")
