"""The Flagsite evaluation engine: pure Python, no Django.

The server and every Python SDK import this package, so a flag evaluates the same
way everywhere. See docs/ruleset.md for the document it compiles.
"""

from .compiler import CompiledFlag, CompiledRuleset, compile_ruleset
from .hashing import bucket
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
    "OPERATORS",
    "RULESET_SCHEMA_VERSION",
    "CompiledFlag",
    "CompiledRuleset",
    "ErrorCode",
    "EvaluationDetails",
    "Reason",
    "RulesetError",
    "RulesetInvalid",
    "bucket",
    "compile_ruleset",
    "ruleset_schema",
    "validate_ruleset",
]
