"""The Flagsite evaluation engine: pure Python, no Django.

The server and every Python SDK import this package, so a flag evaluates the same
way everywhere. See docs/ruleset.md for the document it compiles.
"""

from .compiler import CompiledFlag, CompiledRuleset, compile_ruleset
from .grammar import INSTANT_PATTERN, NUMBER_LIMIT, SEMVER_PATTERN
from .hashing import bucket
from .keys import KEY_MAX_LENGTH, KEY_PATTERN, KEY_RULE, is_key, key_problem
from .operators import OPERATORS
from .types import (
    RULESET_SCHEMA_VERSION,
    ErrorCode,
    EvaluationDetails,
    Reason,
    RulesetError,
    RulesetInvalid,
)
from .validate import ruleset_schema, validate_ruleset

__all__ = [
    "INSTANT_PATTERN",
    "KEY_MAX_LENGTH",
    "KEY_PATTERN",
    "KEY_RULE",
    "NUMBER_LIMIT",
    "OPERATORS",
    "RULESET_SCHEMA_VERSION",
    "SEMVER_PATTERN",
    "CompiledFlag",
    "CompiledRuleset",
    "ErrorCode",
    "EvaluationDetails",
    "Reason",
    "RulesetError",
    "RulesetInvalid",
    "bucket",
    "compile_ruleset",
    "is_key",
    "key_problem",
    "ruleset_schema",
    "validate_ruleset",
]
